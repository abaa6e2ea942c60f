"""Batches the graph backends (ONNX Runtime, OpenVINO) are checked on, against torch's logits."""

from __future__ import annotations

from pathlib import Path

from maskserve.backends.base import EncodedBatch
from support.engines import engine_for


def padded(path: Path, texts: list[str]) -> EncodedBatch:
    encoder = engine_for(path).encoder
    return encoder.pad(encoder.encode(texts))


def sample_texts(path: Path) -> list[str]:
    """Shapes unlike the export's dummy (2 x 8) and probe (3 x 13): up to ~40 tokens, one mask or two."""
    mask = engine_for(path).encoder.mask_token
    long = " ".join(["the children read a story about a king who lived by the sea ."] * 2)
    return [
        f"the cat sat on the {mask} .",
        f"a little {mask} sang a song in the old tree near the {mask} .",
        f"{mask}",
        f"{long} and the {mask} was {mask} .",
    ]
