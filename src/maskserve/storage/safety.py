"""Bounds on what a remote source may make us write, and the check every remote file name goes through."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from maskserve.errors import ModelLoadError

__all__ = ["MAX_DOWNLOAD_ENV", "MAX_EXTRACTED_ENV", "Limits", "safe_relative_path"]

MAX_DOWNLOAD_ENV = "MASKSERVE_MAX_DOWNLOAD_BYTES"
MAX_EXTRACTED_ENV = "MASKSERVE_MAX_EXTRACTED_BYTES"

_GIB = 1024**3


@dataclass(frozen=True)
class Limits:
    """``max_download_bytes`` bounds one archive as transferred, ``max_extracted_bytes`` everything unpacked
    from it and ``max_members`` its entries (a million empty files exhaust inodes, not bytes).

    The defaults leave room for the largest fill-mask checkpoints (XLM-R XXL is about 43 GB in float32).
    """

    max_download_bytes: int = 64 * _GIB
    max_extracted_bytes: int = 128 * _GIB
    max_members: int = 100_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if env is None else env
        default = cls()
        return cls(
            max_download_bytes=_bytes_from_env(env, MAX_DOWNLOAD_ENV, default.max_download_bytes),
            max_extracted_bytes=_bytes_from_env(env, MAX_EXTRACTED_ENV, default.max_extracted_bytes),
            max_members=default.max_members,
        )


def _bytes_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ModelLoadError(f"{name}={raw!r} is not a positive number of bytes")
    return value


def safe_relative_path(name: str, *, what: str) -> str | None:
    """``name`` as a normalised relative POSIX path, None when it names the root itself (``./``).

    Anything that could land outside the destination is refused: absolute paths, ``..`` components,
    backslashes (a separator to Windows tools, so ``..\\x`` would escape there) and NUL bytes.
    """
    if "\x00" in name or "\\" in name:
        raise ModelLoadError(f"unsafe {what} {name!r}: NUL bytes and backslashes are not allowed in paths")
    if name.startswith("/"):
        raise ModelLoadError(f"unsafe {what} {name!r}: absolute paths are not allowed")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ModelLoadError(f"unsafe {what} {name!r}: '..' would write outside the model directory")
    return "/".join(parts) or None
