"""The two entry points: find a model directory to serve, or download a model into a chosen directory."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from maskserve.config.paths import user_cache
from maskserve.errors import ModelLoadError
from maskserve.storage.atomic import DestinationExists, staged_directory
from maskserve.storage.gcs import fetch_gcs
from maskserve.storage.hub import snapshot
from maskserve.storage.local import copy_tree, existing_dir
from maskserve.storage.s3 import fetch_s3
from maskserve.storage.safety import Limits
from maskserve.storage.uri import ModelURI, parse_model_uri
from maskserve.storage.web import fetch_archive

__all__ = ["download_cache_root", "download_model", "resolve_model_source"]

logger = logging.getLogger(__name__)

_CACHE_SUBDIR = "maskserve-downloads"


def resolve_model_source(
    source: str,
    *,
    revision: str | None = None,
    cache_dir: Path | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> Path:
    """Return a local directory holding the model named by ``source``, downloading it if needed.

    A local path or ``file://`` URI is used where it is. A Hub model goes to huggingface_hub's cache (or
    ``cache_dir``); ``revision`` applies to Hub ids that do not carry their own; ``token`` defaults to
    huggingface_hub's own lookup (``HF_TOKEN``, then the stored login) and ``endpoint`` to its
    ``HF_ENDPOINT``. An ``s3://``, ``gs://`` or ``http(s)://`` source is downloaded once into its own
    directory under :func:`download_cache_root` and reused from there on the next start.
    """
    uri = parse_model_uri(source)
    if uri.kind == "local":
        assert uri.path is not None
        return existing_dir(uri.path, source)
    if uri.kind == "hub":
        assert uri.hub is not None
        return snapshot(uri.hub.repo_id, uri.hub.revision or revision, cache_dir, token, endpoint)
    if revision:
        logger.warning("revision %r applies to Hub models only; ignoring it for %s", revision, uri.display)
    target = download_cache_root(cache_dir) / _cache_name(uri)
    if _complete(target):
        logger.info("using %s, downloaded earlier from %s", target, uri.display)
        return target
    logger.info("downloading %s into %s", uri.display, target)
    try:
        _download(uri, target, replace=False, limits=Limits.from_env())
    except DestinationExists:
        if not _complete(target):
            raise
        logger.info("another process downloaded %s into %s first; using that", uri.display, target)
    return target


def download_model(
    source: str,
    dest: Path,
    *,
    revision: str | None = None,
    force: bool = False,
    cache_dir: Path | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    limits: Limits | None = None,
) -> Path:
    """Put the model named by ``source`` into the directory ``dest`` and return ``dest`` (made absolute).

    ``dest`` appears only once the model is complete; a failure leaves it as it was. A non-empty ``dest`` is
    replaced only with ``force``. Sources are the same as for :func:`resolve_model_source`; a local one is
    copied (links followed), a Hub one is fetched through the cache (``cache_dir``) and then copied.
    """
    uri = parse_model_uri(source)
    if revision is not None and uri.kind != "hub":
        raise ModelLoadError(f"a revision applies to Hugging Face Hub models only, not to {uri.display}")
    dest = dest.expanduser().absolute()
    if uri.kind == "local":
        assert uri.path is not None
        _check_not_nested(existing_dir(uri.path, source).resolve(), dest.resolve(), force)
    _download(
        uri,
        dest,
        replace=force,
        limits=limits or Limits.from_env(),
        revision=revision,
        cache_dir=cache_dir,
        token=token,
        endpoint=endpoint,
    )
    logger.info("downloaded %s into %s", uri.display, dest)
    return dest


def download_cache_root(cache_dir: Path | None) -> Path:
    """Where ``s3://``, ``gs://`` and ``http(s)://`` sources are kept for serving: ``maskserve-downloads``
    under ``cache_dir`` when given, else ``$XDG_CACHE_HOME/maskserve/models`` (``~/.cache/...``)."""
    if cache_dir is not None:
        return cache_dir / _CACHE_SUBDIR
    return user_cache("models")


def _cache_name(uri: ModelURI) -> str:
    # Hashed: a URI is no valid file name, and a presigned URL's signature must not show up in a listing.
    return f"{uri.kind}-{hashlib.sha256(uri.source.encode()).hexdigest()[:32]}"


def _complete(target: Path) -> bool:
    # The directory appears by rename once its download is complete, so being there and not empty is enough.
    return target.is_dir() and any(target.iterdir())


def _check_not_nested(source: Path, dest: Path, force: bool) -> None:
    if dest == source or source in dest.parents:
        raise ModelLoadError(f"the destination {dest} lies inside the source {source}")
    if force and dest in source.parents:
        raise ModelLoadError(f"replacing {dest} would delete the source {source}, which lies inside it")


def _download(
    uri: ModelURI,
    dest: Path,
    *,
    replace: bool,
    limits: Limits,
    revision: str | None = None,
    cache_dir: Path | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> None:
    with staged_directory(dest, replace=replace) as stage:
        if uri.kind == "local":
            assert uri.path is not None
            copy_tree(uri.path, stage.model)
        elif uri.kind == "hub":
            assert uri.hub is not None
            # Through the cache rather than snapshot_download(local_dir=...): the cache keeps the
            # ``.incomplete`` part of an interrupted file, so the next attempt resumes it, while a failed
            # stage is deleted whole. The copy then moves into place in one rename like every other source.
            cached = snapshot(uri.hub.repo_id, uri.hub.revision or revision, cache_dir, token, endpoint)
            copy_tree(cached, stage.model)
        elif uri.kind == "s3":
            fetch_s3(uri.bucket, uri.key, stage.model, stage.scratch, limits)
        elif uri.kind == "gs":
            fetch_gcs(uri.bucket, uri.key, stage.model, stage.scratch, limits)
        else:
            fetch_archive(uri.source, stage.model, stage.scratch, limits)
