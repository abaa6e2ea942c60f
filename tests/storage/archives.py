"""Build tar and zip archives in memory, including the hostile kinds no archiver makes by accident."""

from __future__ import annotations

import io
import random
import stat
import tarfile
import zipfile
from dataclasses import dataclass

MODEL_FILES = {
    "config.json": b'{"model_type": "bert"}',
    "tokenizer.json": b'{"version": "1.0"}',
    "model.safetensors": b"weights" * 100,
}

# Incompressible, so that an archive holding it is about as large as it.
NOISE = random.Random(0).randbytes(64 * 1024)


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str = "file"  # file, dir, symlink, hardlink, fifo
    data: bytes = b""
    target: str = ""  # for links


def file(name: str, data: bytes) -> Entry:
    return Entry(name, "file", data)


def directory(name: str) -> Entry:
    return Entry(name, "dir")


def symlink(name: str, target: str) -> Entry:
    return Entry(name, "symlink", target=target)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, "hardlink", target=target)


def fifo(name: str) -> Entry:
    return Entry(name, "fifo")


def model_entries(prefix: str = "") -> list[Entry]:
    return [file(prefix + name, data) for name, data in MODEL_FILES.items()]


def tar_bytes(entries: list[Entry], *, compression: str = "gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}" if compression else "w") as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            if entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[entry.kind]
            info.linkname = entry.target
            tar.addfile(info)
    return buffer.getvalue()


def zip_bytes(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for entry in entries:
            if entry.kind == "file":
                zf.writestr(entry.name, entry.data)
            elif entry.kind == "dir":
                zf.writestr(entry.name.rstrip("/") + "/", b"")
            elif entry.kind == "symlink":
                info = zipfile.ZipInfo(entry.name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, entry.target)
            elif entry.kind == "fifo":
                info = zipfile.ZipInfo(entry.name)
                info.external_attr = (stat.S_IFIFO | 0o644) << 16
                zf.writestr(info, b"")
            else:
                raise ValueError(f"zip has no {entry.kind}")
    return buffer.getvalue()
