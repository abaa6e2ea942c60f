"""Put a downloaded model in place only once it is complete.

Everything is written below a hidden ``.<name>.*.partial`` directory next to the destination, on the same
file system, so moving it into place is a single rename: readers see either no model or the whole model.
A failure (or Ctrl-C) removes that directory; only a killed process leaves one behind.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from maskserve.errors import ModelLoadError

__all__ = ["DestinationExists", "Stage", "staged_directory"]

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"


class DestinationExists(ModelLoadError):
    """The destination holds something already and may not be replaced."""


@dataclass(frozen=True)
class Stage:
    model: Path  # fill this directory; it becomes the destination
    scratch: Path  # room for archives and other intermediate files, removed with the stage


@contextmanager
def staged_directory(dest: Path, *, replace: bool = False) -> Iterator[Stage]:
    """Yield an empty :class:`Stage`; when the block completes, its ``model`` directory becomes ``dest``.

    ``dest`` may be missing or an empty directory; a non-empty one is replaced only with ``replace``. When
    ``dest`` is a mount point (a Kubernetes volume such as /mnt/models) it cannot be renamed over, so the
    stage lives inside it and its entries are moved up one by one: each move is atomic, the whole is not.
    """
    _check_destination(dest, replace)
    in_place = dest.is_dir() and os.path.ismount(dest)
    parent = dest if in_place else dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=PARTIAL_SUFFIX, dir=parent))
    except OSError as exc:
        raise ModelLoadError(f"cannot create a download directory next to {dest}: {exc}") from exc
    stage = Stage(model=work / "model", scratch=work / "scratch")
    try:
        stage.model.mkdir()
        stage.scratch.mkdir()
        yield stage
        if in_place:
            _commit_in_place(stage.model, dest, work, replace)
        else:
            _commit(stage.model, dest, work, replace)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if work.exists():
            logger.warning("could not remove the partial download %s; delete it by hand", work)


def _check_destination(dest: Path, replace: bool) -> None:
    if not dest.exists():
        return
    if not dest.is_dir():
        raise ModelLoadError(f"{dest} exists and is not a directory")
    try:
        occupied = any(dest.iterdir())
    except OSError as exc:
        raise ModelLoadError(f"cannot read {dest}: {exc}") from exc
    if occupied and not replace:
        raise DestinationExists(f"{dest} already exists and is not empty; pass --force to replace it")


def _commit(model: Path, dest: Path, work: Path, replace: bool) -> None:
    try:
        os.rename(model, dest)  # also replaces an empty directory, atomically
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise ModelLoadError(f"cannot move the download into {dest}: {exc}") from exc
    if not replace:
        raise DestinationExists(f"{dest} was filled by something else during the download; it is left as is")
    previous = work / "previous"  # removed with the stage once the new model is in place
    try:
        os.rename(dest, previous)
    except OSError as exc:
        raise ModelLoadError(f"cannot move the old contents of {dest} aside: {exc}") from exc
    try:
        os.rename(model, dest)
    except OSError as exc:
        os.rename(previous, dest)
        raise ModelLoadError(f"cannot move the download into {dest}: {exc}") from exc


def _commit_in_place(model: Path, dest: Path, work: Path, replace: bool) -> None:
    try:
        others = [entry for entry in dest.iterdir() if entry != work]
        if others and not replace:
            raise DestinationExists(
                f"{dest} was filled by something else during the download; it is left as is"
            )
        for entry in others:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for entry in model.iterdir():
            os.rename(entry, dest / entry.name)
    except OSError as exc:
        raise ModelLoadError(f"cannot move the download into {dest}: {exc}") from exc
