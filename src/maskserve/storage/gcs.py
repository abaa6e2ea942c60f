"""``gs://bucket/prefix`` sources, through google-cloud-storage (the ``gcs`` extra).

Credentials come from Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, workload identity,
the metadata server); without any, the bucket is read anonymously, as KServe does, which works for public
buckets only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskserve.errors import ModelLoadError
from maskserve.storage.objects import RemoteObject, dir_prefix, place_objects
from maskserve.storage.safety import Limits

__all__ = ["fetch_gcs"]


def fetch_gcs(bucket: str, key: str, model_dir: Path, scratch: Path, limits: Limits) -> None:
    """Download every object under ``gs://bucket/key/`` (or the single object ``key``) into ``model_dir``."""
    label = f"gs://{bucket}/{key}".rstrip("/")
    storage, auth_exceptions, api_exceptions = _modules()
    try:
        client = storage.Client()
    except auth_exceptions.DefaultCredentialsError:
        client = storage.Client.create_anonymous_client()
    try:
        prefix = dir_prefix(key)
        objects = [
            RemoteObject(blob.name, blob.name[len(prefix) :], int(blob.size or 0))
            for blob in client.list_blobs(bucket, prefix=prefix)
        ]
        single = False
        if not objects and key.strip("/") and not key.endswith("/"):
            blob = client.bucket(bucket).get_blob(key)
            if blob is not None:
                objects, single = [RemoteObject(key, key.rsplit("/", 1)[-1], int(blob.size or 0))], True
    except Exception as exc:
        raise _error(exc, label, api_exceptions) from exc
    if not objects:
        raise ModelLoadError(f"no objects found under {label}; check the bucket name and the prefix")

    def fetch(obj: RemoteObject, target: Path, progress: Callable[[int], object]) -> None:
        try:
            client.bucket(bucket).blob(obj.key).download_to_filename(str(target))
        except Exception as exc:
            raise _error(exc, f"gs://{bucket}/{obj.key}", api_exceptions) from exc
        progress(obj.size)

    place_objects(objects, fetch, model_dir, scratch, limits, label=label, single_object=single)


def _modules() -> tuple[Any, Any, Any]:
    # By name: google-cloud-storage is optional, and these modules have no type information to check against.
    try:
        storage = importlib.import_module("google.cloud.storage")
        auth_exceptions = importlib.import_module("google.auth.exceptions")
        api_exceptions = importlib.import_module("google.api_core.exceptions")
    except ImportError as exc:
        raise ModelLoadError(
            "gs:// model URIs need google-cloud-storage, which is not installed; pip install 'maskserve[gcs]'"
        ) from exc
    return storage, auth_exceptions, api_exceptions


def _error(exc: Exception, what: str, api_exceptions: Any) -> ModelLoadError:
    if isinstance(exc, api_exceptions.NotFound):
        return ModelLoadError(f"{what} was not found on Google Cloud Storage (does the bucket exist?)")
    if isinstance(exc, (api_exceptions.Forbidden, api_exceptions.Unauthorized)):
        return ModelLoadError(
            f"access to {what} was denied ({exc}); set GOOGLE_APPLICATION_CREDENTIALS to a service account "
            "key that may read the bucket, or use workload identity"
        )
    return ModelLoadError(f"could not read {what} from Google Cloud Storage: {exc}")
