"""The engine: tokenization, batching, caching and post-processing around a backend."""
