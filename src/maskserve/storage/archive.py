"""Unpack ``.tar``, ``.tar.gz``/``.tgz`` and ``.zip`` model archives without trusting them.

Only directories and regular files are ever created. A link inside the archive that stays inside it becomes a
copy of the file it names, so the unpacked tree holds no link at all: a later member cannot be written through
one, and checking paths as strings is then the same as checking them on disk. A link that points outside, an
absolute or ``..`` path, a device or FIFO, too many members or too many bytes stop the unpacking with a
ModelLoadError; the caller owns the destination and removes it.
"""

from __future__ import annotations

import enum
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from maskserve.errors import ModelLoadError
from maskserve.storage.safety import MAX_EXTRACTED_ENV, Limits, safe_relative_path

__all__ = ["ArchiveKind", "archive_kind", "content_type_kind", "extract_archive", "unpack_into"]

_CHUNK = 1024 * 1024
_MAX_LINK_HOPS = 40  # as the kernel's own limit on nested symlinks
_MAX_LINK_TARGET = 4096


class ArchiveKind(enum.Enum):
    TAR = "tar"  # plain or compressed: tarfile recognises gzip (and bzip2, xz) by content
    ZIP = "zip"


_SUFFIXES = (
    (".tar.gz", ArchiveKind.TAR),
    (".tgz", ArchiveKind.TAR),
    (".tar", ArchiveKind.TAR),
    (".zip", ArchiveKind.ZIP),
)
_CONTENT_TYPES = {
    "application/gzip": ArchiveKind.TAR,
    "application/x-gzip": ArchiveKind.TAR,
    "application/x-tar": ArchiveKind.TAR,
    "application/x-gtar": ArchiveKind.TAR,
    "application/x-compressed-tar": ArchiveKind.TAR,
    "application/zip": ArchiveKind.ZIP,
    "application/x-zip-compressed": ArchiveKind.ZIP,
}
SUPPORTED = ".tar.gz, .tgz, .tar or .zip"
# What a corrupt or truncated archive raises; RuntimeError is an encrypted zip member and NotImplementedError
# a compression method zipfile lacks.
_UNREADABLE = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, RuntimeError, NotImplementedError)


def archive_kind(name: str) -> ArchiveKind | None:
    """The kind of archive a file or URL path names by its suffix."""
    lowered = name.lower()
    return next((kind for suffix, kind in _SUFFIXES if lowered.endswith(suffix)), None)


def content_type_kind(content_type: str | None) -> ArchiveKind | None:
    if not content_type:
        return None
    return _CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())


def extract_archive(archive: Path, kind: ArchiveKind, dest: Path, limits: Limits, *, label: str) -> None:
    """Unpack ``archive`` into the existing, empty directory ``dest``; ``label`` names it in messages."""
    unpacker = _Unpacker(dest, limits, label)
    try:
        if kind is ArchiveKind.TAR:
            _unpack_tar(archive, unpacker)
        else:
            _unpack_zip(archive, unpacker)
        unpacker.materialise_links()
    except ModelLoadError:
        raise
    except _UNREADABLE as exc:
        raise ModelLoadError(f"{label} is not a readable {kind.value} archive: {exc}") from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot unpack {label}: {exc}") from exc


def unpack_into(archive: Path, kind: ArchiveKind, model_dir: Path, limits: Limits, *, label: str) -> None:
    """Unpack ``archive`` so that the model lands in ``model_dir``, an empty directory: an archive whose only
    entry is a directory (``tar czf m.tgz bert/``) gives that directory, as the loader wants ``config.json``
    at the top. The archive is deleted once unpacked."""
    unpacked = archive.with_name(archive.name + ".unpacked")
    unpacked.mkdir()
    extract_archive(archive, kind, unpacked, limits, label=label)
    archive.unlink()
    entries = list(unpacked.iterdir())
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
    try:
        os.rename(root, model_dir)  # replaces the empty model_dir; same file system, so a rename
    except OSError as exc:
        raise ModelLoadError(f"cannot move the contents of {label} into place: {exc}") from exc


class _Unpacker:
    def __init__(self, root: Path, limits: Limits, label: str) -> None:
        self.root, self.limits, self.label = root, limits, label
        self.written = 0
        self.members = 0
        self.files: set[str] = set()
        self.links: dict[str, str] = {}  # link path -> the path it names, both relative to root

    def path(self, name: str) -> str | None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise self.too_many_members()
        return safe_relative_path(name, what=f"member of {self.label}")

    def too_many_members(self) -> ModelLoadError:
        return ModelLoadError(
            f"{self.label} has more than {self.limits.max_members} entries; refusing to unpack it"
        )

    def directory(self, rel: str) -> None:
        self._claim(rel, directory=True)
        (self.root / rel).mkdir(parents=True, exist_ok=True)

    def file(self, rel: str, source: IO[bytes], declared_size: int) -> None:
        self._claim(rel, directory=False)
        self._account(declared_size, count=False)
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            while chunk := source.read(_CHUNK):
                self._account(len(chunk))
                out.write(chunk)
        self.files.add(rel)

    def link(self, rel: str, target: str, *, relative_to_link: bool) -> None:
        """Record a link; ``relative_to_link`` for symlinks, whose target starts at the link's directory."""
        self._claim(rel, directory=False)
        if target.startswith("/") or not target:
            raise ModelLoadError(
                f"unsafe member of {self.label}: link {rel!r} points to {target!r}, outside the archive"
            )
        joined = posixpath.join(posixpath.dirname(rel), target) if relative_to_link else target
        resolved = posixpath.normpath(joined)
        if resolved == ".." or resolved.startswith("../"):
            raise ModelLoadError(
                f"unsafe member of {self.label}: link {rel!r} points to {target!r}, outside the archive"
            )
        self.links[rel] = resolved

    def materialise_links(self) -> None:
        for rel, named in self.links.items():
            target, seen = named, 0
            while target in self.links:
                target = self.links[target]
                seen += 1
                if seen > _MAX_LINK_HOPS:
                    raise ModelLoadError(f"{self.label}: link {rel!r} is part of a loop")
            if target not in self.files:
                raise ModelLoadError(
                    f"{self.label}: link {rel!r} points to {target!r}, which is not a file in the archive "
                    "(links to directories are not supported)"
                )
            self._account((self.root / target).stat().st_size)
            destination = self.root / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / target, destination)

    def _claim(self, rel: str, *, directory: bool) -> None:
        # A path that is a link and also a file or directory (or below a link) would make the result depend
        # on member order, and below a link it would be written where the link points.
        below_link = any(str(parent) in self.links for parent in PurePosixPath(rel).parents)
        if rel in self.links or below_link or (not directory and (self.root / rel).is_dir()):
            raise ModelLoadError(f"{self.label} has conflicting entries for {rel!r}")

    def _account(self, size: int, *, count: bool = True) -> None:
        total = self.written + size
        if total > self.limits.max_extracted_bytes:
            raise ModelLoadError(
                f"{self.label} unpacks to more than {self.limits.max_extracted_bytes} bytes; refusing it "
                f"(raise {MAX_EXTRACTED_ENV} if the model really is that large)"
            )
        if count:
            self.written = total


def _unpack_tar(archive: Path, unpacker: _Unpacker) -> None:
    # Iterating reads one header at a time, so a bomb of headers stops at max_members instead of being
    # listed in full first.
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            rel = unpacker.path(member.name)
            if rel is None:
                continue
            if member.isdir():
                unpacker.directory(rel)
            elif member.isreg():
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isreg() members always have data
                    raise ModelLoadError(f"{unpacker.label}: cannot read member {member.name!r}")
                with source:
                    unpacker.file(rel, source, member.size)
            elif member.issym():
                unpacker.link(rel, member.linkname, relative_to_link=True)
            elif member.islnk():
                target = safe_relative_path(member.linkname, what=f"link target in {unpacker.label}")
                unpacker.link(rel, target or "", relative_to_link=False)
            else:
                raise ModelLoadError(
                    f"unsafe member of {unpacker.label}: {member.name!r} is a device, FIFO or other special "
                    "file"
                )


def _unpack_zip(archive: Path, unpacker: _Unpacker) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > unpacker.limits.max_members:
            raise unpacker.too_many_members()
        # The central directory states every size up front: refuse a bomb before writing anything.
        unpacker._account(sum(info.file_size for info in infos), count=False)
        for info in infos:
            rel = unpacker.path(info.filename)
            if rel is None:
                continue
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if info.is_dir():
                unpacker.directory(rel)
            elif kind == stat.S_IFLNK:
                if info.file_size > _MAX_LINK_TARGET:
                    raise ModelLoadError(f"unsafe member of {unpacker.label}: link {rel!r} is too long")
                target = zf.read(info).decode("utf-8", errors="replace")
                unpacker.link(rel, target, relative_to_link=True)
            elif kind in (0, stat.S_IFREG):  # zips made on Windows carry no Unix mode at all
                with zf.open(info) as source:
                    unpacker.file(rel, source, info.file_size)
            else:
                raise ModelLoadError(
                    f"unsafe member of {unpacker.label}: {info.filename!r} is a device, FIFO or other "
                    "special file"
                )
