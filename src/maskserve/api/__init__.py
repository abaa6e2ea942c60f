"""Transports: thin adapters from HTTP and gRPC to the engine."""
