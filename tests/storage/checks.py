"""Assertions the download tests share: what a directory holds, and that a failed download left nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskserve.errors import ModelLoadError
from maskserve.storage import download_model


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def download_fails(uri: str, parent: Path, match: str) -> str:
    """Download ``uri`` into ``parent/bert`` expecting ModelLoadError; ``parent`` must stay empty."""
    with pytest.raises(ModelLoadError, match=match) as info:
        download_model(uri, parent / "bert")
    assert list(parent.iterdir()) == []  # neither the destination nor a staging directory
    return str(info.value)
