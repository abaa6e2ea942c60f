"""Local sources: a directory path or a ``file://`` URI."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from maskserve.errors import ModelLoadError

__all__ = ["copy_tree", "existing_dir", "local_path"]


def local_path(source: str) -> Path:
    """The path named by a plain path or a ``file:`` URI (which may be percent-encoded)."""
    if not source.startswith("file:"):
        return Path(source).expanduser()
    parts = urlsplit(source)
    if parts.netloc not in ("", "localhost"):
        raise ModelLoadError(f"unsupported file URI {source!r}: only local file:///abs/path URIs work")
    return Path(url2pathname(parts.path))


def existing_dir(path: Path, source: str) -> Path:
    if not path.exists():
        raise ModelLoadError(f"model directory {str(path)!r} does not exist (nor is {source!r} a Hub id)")
    if not path.is_dir():
        raise ModelLoadError(f"model path {str(path)!r} is not a directory")
    return path


def copy_tree(source: Path, dest: Path) -> None:
    """Copy the contents of ``source`` into the existing directory ``dest``, following symlinks: a Hub cache
    snapshot is made of links into its blob store, and the copy must stand on its own."""
    try:
        shutil.copytree(source, dest, symlinks=False, dirs_exist_ok=True)
    except OSError as exc:  # shutil.Error, which lists every file that failed, is one too
        raise ModelLoadError(f"cannot copy {source} to {dest}: {exc}") from exc
