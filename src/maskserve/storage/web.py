"""``http://`` and ``https://`` sources: one model archive, fetched with the standard library and unpacked.

Proxies (``HTTPS_PROXY``, ``NO_PROXY``) and CA bundles (``SSL_CERT_FILE``) follow the standard library's
rules. As in KServe, an environment variable named ``<host>-headers`` holding a JSON object adds request
headers for that host (e.g. an ``Authorization`` header).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from maskserve import __version__
from maskserve.errors import ModelLoadError
from maskserve.storage.archive import SUPPORTED, ArchiveKind, archive_kind, content_type_kind, unpack_into
from maskserve.storage.progress import progress_bar
from maskserve.storage.safety import MAX_DOWNLOAD_ENV, Limits

__all__ = ["fetch_archive", "redact"]

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_TIMEOUT_S = 60.0  # per connect and per read, not for the whole transfer
_HEADERS_SUFFIX = "-headers"


def redact(url: str) -> str:
    """``url`` without credentials or query: presigned URLs carry their signature there, and messages and
    logs must not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def fetch_archive(
    url: str, model_dir: Path, scratch: Path, limits: Limits, env: Mapping[str, str] | None = None
) -> None:
    """Download the archive at ``url`` into ``scratch`` and unpack it into ``model_dir``."""
    shown = redact(url)
    request = urllib.request.Request(url, headers=_headers(url, os.environ if env is None else env))
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _status_error(exc.code, shown) from exc
    except urllib.error.URLError as exc:
        raise ModelLoadError(f"cannot reach {shown}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ModelLoadError(f"cannot download {shown}: {exc}") from exc
    with response:
        kind = (
            archive_kind(urlsplit(url).path)
            or archive_kind(urlsplit(response.url).path)
            or content_type_kind(response.headers.get("Content-Type"))
        )
        if kind is None:
            raise ModelLoadError(
                f"unsupported archive type at {shown}: an http(s) model URI must name a {SUPPORTED} archive "
                f"(by its path or its Content-Type, here {response.headers.get('Content-Type')!r})"
            )
        archive = scratch / ("model.zip" if kind is ArchiveKind.ZIP else "model.tar")
        _save(response, archive, shown, limits)
    logger.info("unpacking %s", shown)
    unpack_into(archive, kind, model_dir, limits, label=shown)


def _headers(url: str, env: Mapping[str, str]) -> dict[str, str]:
    headers = {"User-Agent": f"maskserve/{__version__}"}
    host = urlsplit(url).hostname or ""
    raw = env.get(host + _HEADERS_SUFFIX)
    if raw is None:
        return headers
    try:
        extra = json.loads(raw)
    except ValueError as exc:
        raise ModelLoadError(f"{host}{_HEADERS_SUFFIX} must hold a JSON object of headers: {exc}") from exc
    if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
        raise ModelLoadError(f"{host}{_HEADERS_SUFFIX} must hold a JSON object of string headers")
    headers.update(extra)
    return headers


def _status_error(status: int, shown: str) -> ModelLoadError:
    if status in (401, 403):
        return ModelLoadError(
            f"{shown} refused access (HTTP {status}); for a protected server, put its credentials in the "
            f"'<host>{_HEADERS_SUFFIX}' environment variable, e.g. "
            f'{urlsplit(shown).hostname}{_HEADERS_SUFFIX}=\'{{"Authorization": "Bearer ..."}}\''
        )
    if status == 404:
        return ModelLoadError(f"{shown} was not found (HTTP 404)")
    return ModelLoadError(f"{shown} answered HTTP {status}")


def _save(response: http.client.HTTPResponse, archive: Path, shown: str, limits: Limits) -> None:
    bound = limits.max_download_bytes
    length_header = response.headers.get("Content-Length")
    expected = int(length_header) if length_header and length_header.isdigit() else None
    if expected is not None and expected > bound:
        raise ModelLoadError(
            f"{shown} is {expected} bytes, more than the {bound} allowed; raise {MAX_DOWNLOAD_ENV} to "
            "accept it"
        )
    received = 0
    with archive.open("wb") as out, progress_bar(expected, shown) as bar:
        try:
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if received > bound:
                    raise ModelLoadError(
                        f"{shown} sent more than the {bound} bytes allowed; raise {MAX_DOWNLOAD_ENV} to "
                        "accept it"
                    )
                out.write(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise ModelLoadError(f"the download of {shown} failed after {received} bytes: {exc}") from exc
    # http.client ends a read early, without an error, when the server closes the connection mid-body.
    if expected is not None and received != expected:
        raise ModelLoadError(
            f"the download of {shown} was cut off: {received} of {expected} bytes arrived; try again"
        )
