"""Backends run the network: token arrays in, logits at the mask positions out."""
