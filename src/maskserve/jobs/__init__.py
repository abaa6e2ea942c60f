"""Batch jobs: a model over a file of texts, without a server (``maskserve batch``), on one machine or on a
Ray cluster."""
