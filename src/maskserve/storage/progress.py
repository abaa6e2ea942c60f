"""Byte progress bars for the downloads huggingface_hub does not make itself."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int | None, desc: str) -> Any:
    """A tqdm bar in bytes, used as a context manager with ``update(n)``.

    huggingface_hub's tqdm, so HF_HUB_DISABLE_PROGRESS_BARS silences these bars along with the Hub's own.
    """
    from huggingface_hub.utils.tqdm import tqdm

    bar_class: Any = tqdm  # untyped third-party class
    return bar_class(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)
