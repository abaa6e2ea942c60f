"""maskserve: an inference server for Hugging Face fill-mask models."""

__version__ = "0.1.0"
