"""Tell which kind of source a model string names, and check its shape before anything is fetched."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from maskserve.errors import ModelLoadError
from maskserve.storage.hub import HubRef, parse_hub_ref
from maskserve.storage.local import local_path
from maskserve.storage.web import redact

__all__ = ["ModelURI", "SourceKind", "parse_model_uri"]

SourceKind = Literal["local", "hub", "s3", "gs", "http"]

# Two characters at least, so that a Windows drive (C://) is never taken for a scheme.
_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+)://")
# Loose on purpose: S3 and GCS differ in their rules, and the store itself names a bad bucket best.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,221}")
_SUPPORTED = "a local directory, file://, hf://, s3://, gs:// or an http(s):// archive URL"


@dataclass(frozen=True)
class ModelURI:
    kind: SourceKind
    source: str  # as given
    path: Path | None = None  # local
    hub: HubRef | None = None  # hub
    bucket: str = ""  # s3, gs
    key: str = ""  # s3, gs: an object key or a prefix, possibly empty

    @property
    def display(self) -> str:
        """``source`` fit for logs and messages: an http(s) URL loses its query and credentials."""
        return redact(self.source) if self.kind == "http" else self.source


def parse_model_uri(source: str) -> ModelURI:
    """Classify ``source``; a malformed or unsupported URI raises ModelLoadError."""
    match = _SCHEME.match(source)
    scheme = match["scheme"].lower() if match else ""
    rest = source[match.end() :] if match else source
    if scheme == "hf":
        ref = parse_hub_ref(source)
        assert ref is not None  # an hf:// string is a Hub reference or an error
        return ModelURI("hub", source, hub=ref)
    if scheme in ("s3", "gs"):
        bucket, _, key = rest.partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise ModelLoadError(f"invalid {scheme}:// URI {source!r}: expected {scheme}://bucket[/prefix]")
        return ModelURI("s3" if scheme == "s3" else "gs", source, bucket=bucket, key=key)
    if scheme in ("http", "https"):
        try:
            parts = urlsplit(source)
            host, _ = parts.hostname, parts.port  # the port is checked only when read
        except ValueError as exc:  # e.g. a malformed IPv6 literal or an out-of-range port
            raise ModelLoadError(f"invalid model URL: {exc}") from exc
        if not host:
            raise ModelLoadError(f"invalid URL {source!r}: it names no host")
        return ModelURI("http", source)
    if scheme and scheme != "file":
        raise ModelLoadError(f"unsupported model URI scheme {scheme}:// in {source!r}; use {_SUPPORTED}")
    if scheme:
        return ModelURI("local", source, path=local_path(f"file://{rest}"))
    if source.startswith("file:"):
        return ModelURI("local", source, path=local_path(source))
    ref = parse_hub_ref(source)
    if ref is not None:
        return ModelURI("hub", source, hub=ref)
    return ModelURI("local", source, path=local_path(source))
