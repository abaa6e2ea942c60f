"""What S3 and GCS sources share: the objects under a prefix are the model directory, unless the prefix holds
exactly one object and that is an archive, which is then unpacked (as KServe's storage initializer does)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from maskserve.errors import ModelLoadError
from maskserve.storage.archive import SUPPORTED, archive_kind, unpack_into
from maskserve.storage.progress import progress_bar
from maskserve.storage.safety import MAX_DOWNLOAD_ENV, Limits, safe_relative_path

__all__ = ["Fetch", "RemoteObject", "dir_prefix", "place_objects"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteObject:
    key: str  # the full object key, for the client
    name: str  # where it goes, relative to the model directory
    size: int


# Download one object to a local file, reporting progress in bytes; raises ModelLoadError.
Fetch = Callable[[RemoteObject, Path, Callable[[int], object]], None]


def dir_prefix(key: str) -> str:
    """The listing prefix for ``key`` taken as a directory: ``models/bert`` must not also match
    ``models/bert-large/``."""
    return key.rstrip("/") + "/" if key.strip("/") else ""


def place_objects(
    objects: Sequence[RemoteObject],
    fetch: Fetch,
    model_dir: Path,
    scratch: Path,
    limits: Limits,
    *,
    label: str,
    single_object: bool = False,
) -> None:
    """Download ``objects`` into ``model_dir``; ``single_object`` when the URI named one object exactly."""
    # Directory markers (keys ending in "/") carry no data; every other name is checked before the first
    # byte is fetched, so a hostile key costs nothing.
    wanted = [obj for obj in objects if not obj.name.endswith("/")]
    named = [(obj, safe_relative_path(obj.name, what=f"object key in {label}")) for obj in wanted]
    files = [(obj, name) for obj, name in named if name is not None]
    if not files:
        raise ModelLoadError(f"{label} holds no files (only directory markers)")
    total = sum(obj.size for obj, _ in files)
    try:
        with progress_bar(total, label) as bar:
            if len(files) == 1 and (kind := archive_kind(files[0][1])) is not None:
                obj, name = files[0]
                shown = label if single_object else f"{label}/{name}"
                if obj.size > limits.max_download_bytes:
                    raise ModelLoadError(
                        f"{shown} is {obj.size} bytes, more than the {limits.max_download_bytes} "
                        f"allowed; raise {MAX_DOWNLOAD_ENV} to accept it"
                    )
                archive = scratch / name.rsplit("/", 1)[-1]
                fetch(obj, archive, bar.update)
                logger.info("unpacking %s", obj.key)
                unpack_into(archive, kind, model_dir, limits, label=shown)
                return
            if single_object:
                raise ModelLoadError(
                    f"{label} is a single object, not a prefix holding a model directory nor a {SUPPORTED} "
                    "archive"
                )
            for obj, name in files:
                target = model_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                logger.debug("fetching %s", obj.key)
                fetch(obj, target, bar.update)
    except OSError as exc:
        raise ModelLoadError(f"cannot write the files of {label}: {exc}") from exc
    logger.info("fetched %d files (%d bytes) from %s", len(files), total, label)
