"""The on-disk cache of built graphs (ONNX exports, int8 graphs), shared by every backend that builds one.

One entry is a directory named by a key of everything it depends on (the model's files, the library
versions, the build's settings), holding the backend's files and ``meta.json``. An entry is built in a
temporary directory beside it and published with one ``os.replace``, so a crash never leaves a half-written
graph where a later load would find it, and two processes racing to build the same entry both end up using
one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from maskserve.config.paths import user_cache

logger = logging.getLogger(__name__)

META_FILE = "meta.json"
# Where a model prepared with `maskserve download --export` carries its graphs.
BESIDE_MODEL = ".maskserve-onnx"
_STALE_TMP_SECONDS = 24 * 3600
_SAMPLE = 1 << 20


def _file_digest(path: Path) -> str:
    """sha256 of a whole small file, or of its size plus first, middle and last MB when it is large.

    Weight files are hundreds of MB and hashed on every start: sampling keeps a cache hit at ~30 ms where
    a full sha256 of a bert-base takes ~2.5 s here (3x that for a large model). Fine-tuning or converting a
    checkpoint changes the tensors in all three samples; the change this misses is a same-size edit that
    spares all three MB, which no training run makes. size+mtime is not used: copies and hub snapshots
    change mtimes without changing weights (a needless re-export) and an in-place edit may keep them.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        if size <= 3 * _SAMPLE:
            digest.update(handle.read())
        else:
            for offset in (0, size // 2, size - _SAMPLE):
                handle.seek(offset)
                digest.update(handle.read(_SAMPLE))
    return digest.hexdigest()


def _model_files(path: Path) -> list[Path]:
    patterns = ("config.json", "*.safetensors", "*.bin", "*.index.json", "*.py")
    found = {p for pattern in patterns for p in path.glob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.name)


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cache_key(path: Path, packages: Sequence[str], build: Mapping[str, Any]) -> str:
    """Hash of everything a built graph depends on: the model's files, the versions of ``packages`` and
    the ``build``'s own settings."""
    record = {
        "files": [(p.name, p.stat().st_size, _file_digest(p)) for p in _model_files(path)],
        "versions": {pkg: version(pkg) for pkg in packages},
        **build,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]


def _usable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError:
        return False
    return True


def user_graphs() -> Path:
    """The user's graph cache: ``$XDG_CACHE_HOME/maskserve/onnx`` (``~/.cache/maskserve/onnx``)."""
    return user_cache("onnx")


def cache_root(model_dir: Path, cache_dir: Path | None) -> Path:
    """Where a new graph is written: ``cache_dir``, else the user's cache directory, never the user's model
    folder (hundreds of MB nobody asked for there); where that cache cannot be written (a container with a
    read-only home), beside the model, else the temporary directory."""
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot use {cache_dir} as the graph cache: {exc}") from exc
        return cache_dir
    for root in (user_graphs(), model_dir / BESIDE_MODEL):
        if _usable(root):
            return root
    fallback = Path(tempfile.gettempdir()) / "maskserve-onnx"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def find_entry(model_dir: Path, cache_dir: Path | None, name: str) -> Path | None:
    """An entry already built, wherever it may be: ``cache_dir``, beside the model (read-only too: a model
    prepared with ``maskserve download --export onnx`` carries its graphs, and KServe mounts it read-only),
    or the user's cache directory."""
    roots = [cache_dir] if cache_dir is not None else []
    roots += [model_dir / BESIDE_MODEL, user_graphs(), Path(tempfile.gettempdir()) / "maskserve-onnx"]
    for root in roots:
        if read_entry(root / name) is not None:
            return root / name
    return None


def read_entry(entry: Path) -> dict[str, Any] | None:
    """The metadata of a published entry, or None when there is none (the metadata is written last, and
    the entry appears whole)."""
    if not (entry / META_FILE).is_file():
        return None
    meta: dict[str, Any] = json.loads((entry / META_FILE).read_text(encoding="utf-8"))
    return meta


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


@contextmanager
def building(entry: Path) -> Iterator[Path]:
    """A scratch directory that becomes ``entry`` atomically when the block completes without error."""
    _sweep_stale(entry.parent)
    scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=entry.parent))
    try:
        yield scratch
        try:
            os.replace(scratch, entry)
        except OSError:
            if read_entry(entry) is None:
                raise
            logger.info("another process published %s first; using it", entry)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _sweep_stale(root: Path) -> None:
    """Remove scratch directories a crashed build left behind (only old ones: a build may be running)."""
    now = time.time()
    for stale in root.glob(".tmp-*"):
        try:
            if now - stale.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            continue
