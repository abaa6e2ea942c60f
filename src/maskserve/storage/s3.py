"""``s3://bucket/prefix`` sources, through boto3 (the ``s3`` extra), configured the way KServe configures it.

boto3 finds credentials itself (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, a
profile, a web identity or an instance role) and reads ``AWS_DEFAULT_REGION``, ``AWS_MAX_ATTEMPTS`` and the
like. What KServe adds is read here: see :meth:`S3Options.from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskserve.errors import ModelLoadError
from maskserve.storage.objects import RemoteObject, dir_prefix, place_objects
from maskserve.storage.safety import Limits

__all__ = ["S3Options", "fetch_s3"]

_MISSING_KEY = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
_FALSE = {"0", "false"}


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None
    verify: bool | str | None = None  # None: boto3's default, which honours AWS_CA_BUNDLE itself
    anonymous: bool = False
    virtual_addressing: bool = False
    accelerate: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Options:
        """Read the variables KServe's S3 secret sets.

        * endpoint: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (a full URL, what KServe's downloader
          reads), else ``S3_ENDPOINT`` (``host[:port]``, what the secret's ``s3-endpoint`` annotation holds),
          reached over https unless ``S3_USE_HTTPS`` is ``0`` -- the URL KServe's webhook builds from them;
        * ``S3_VERIFY_SSL``: ``0`` or ``false`` turns certificate checks off; ``AWS_CA_BUNDLE`` names a CA
          file;
        * ``awsAnonymousCredential=true``: unsigned requests, for public buckets;
        * ``S3_USER_VIRTUAL_BUCKET=true`` (KServe's spelling) and ``S3_USE_ACCELERATE=true``.
        """
        env = os.environ if env is None else env
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        host = env.get("S3_ENDPOINT", "").strip()
        if endpoint is None and host:
            scheme = "http" if env.get("S3_USE_HTTPS", "").strip().lower() in _FALSE else "https"
            endpoint = host if "://" in host else f"{scheme}://{host}"
        verify: bool | str | None = None
        raw_verify = env.get("S3_VERIFY_SSL", "").strip().lower()
        if raw_verify:
            verify = raw_verify not in _FALSE
        bundle = env.get("AWS_CA_BUNDLE", "").strip()
        if verify is not False and bundle:
            if not Path(bundle).is_file():
                raise ModelLoadError(f"AWS_CA_BUNDLE names {bundle!r}, which is not a file")
            verify = bundle
        return cls(
            endpoint_url=endpoint,
            verify=verify,
            anonymous=env.get("awsAnonymousCredential", "").strip().lower() == "true",
            virtual_addressing=env.get("S3_USER_VIRTUAL_BUCKET", "").strip().lower() == "true",
            accelerate=env.get("S3_USE_ACCELERATE", "").strip().lower() == "true",
        )


def fetch_s3(
    bucket: str,
    key: str,
    model_dir: Path,
    scratch: Path,
    limits: Limits,
    env: Mapping[str, str] | None = None,
) -> None:
    """Download every object under ``s3://bucket/key/`` (or the single object ``key``) into ``model_dir``."""
    label = f"s3://{bucket}/{key}".rstrip("/")
    client = _client(S3Options.from_env(env))
    endpoint = str(client.meta.endpoint_url)
    try:
        objects, single = _list(client, bucket, key)
    except Exception as exc:
        raise _error(exc, label, endpoint) from exc
    if not objects:
        raise ModelLoadError(
            f"no objects found under {label} at {endpoint}; check the bucket name and the prefix"
        )

    def fetch(obj: RemoteObject, target: Path, progress: Callable[[int], object]) -> None:
        try:
            client.download_file(bucket, obj.key, str(target), Callback=progress)
        except Exception as exc:
            raise _error(exc, f"s3://{bucket}/{obj.key}", endpoint) from exc

    place_objects(objects, fetch, model_dir, scratch, limits, label=label, single_object=single)


def _client(options: S3Options) -> Any:
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
    except ImportError as exc:
        raise ModelLoadError(
            f"s3:// model URIs need boto3, which is not installed ({exc}); pip install 'maskserve[s3]'"
        ) from exc
    config = Config(signature_version=UNSIGNED) if options.anonymous else Config()
    addressing: dict[str, Any] = {}
    if options.virtual_addressing:
        addressing["addressing_style"] = "virtual"
    if options.accelerate:
        addressing["use_accelerate_endpoint"] = True
    if addressing:
        config = config.merge(Config(s3=addressing))
    kwargs: dict[str, Any] = {"config": config}
    if options.endpoint_url:
        kwargs["endpoint_url"] = options.endpoint_url
    if options.verify is not None:
        kwargs["verify"] = options.verify
    try:
        # A session of its own: boto3's default session keeps the first credentials it found for good.
        return boto3.session.Session().client("s3", **kwargs)
    except Exception as exc:  # botocore raises ValueError for a malformed endpoint, its own errors otherwise
        raise ModelLoadError(f"cannot set up the S3 client: {exc}") from exc


def _list(client: Any, bucket: str, key: str) -> tuple[list[RemoteObject], bool]:
    prefix = dir_prefix(key)
    objects = [
        RemoteObject(item["Key"], item["Key"][len(prefix) :], int(item.get("Size", 0)))
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    if objects or not key.strip("/") or key.endswith("/"):
        return objects, False
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _code(exc) in _MISSING_KEY:
            return [], False
        raise
    return [RemoteObject(key, key.rsplit("/", 1)[-1], int(head.get("ContentLength", 0)))], True


def _code(exc: Any) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _error(exc: Exception, what: str, endpoint: str) -> ModelLoadError:
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        SSLError,
    )

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ModelLoadError(
            f"no usable AWS credentials to read {what} ({exc}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or a profile or role), or awsAnonymousCredential=true for a public bucket"
        )
    if isinstance(exc, SSLError):
        return ModelLoadError(
            f"TLS with the S3 endpoint {endpoint} failed ({exc}); set AWS_CA_BUNDLE to its CA certificate, "
            "or S3_VERIFY_SSL=0 to skip the check"
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return ModelLoadError(
            f"cannot reach the S3 endpoint {endpoint} to read {what} ({exc}); check S3_ENDPOINT and "
            "S3_USE_HTTPS (or AWS_ENDPOINT_URL)"
        )
    if isinstance(exc, ClientError):
        code = _code(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        if code == "NoSuchBucket":
            bucket = what.removeprefix("s3://").split("/", 1)[0]
            return ModelLoadError(f"S3 bucket {bucket!r} does not exist at {endpoint}")
        if code in _DENIED:
            return ModelLoadError(
                f"access to {what} at {endpoint} was denied ({code}: {message}); check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY and that they may read this bucket"
            )
        if code in _MISSING_KEY:
            return ModelLoadError(f"{what} was not found at {endpoint}")
        return ModelLoadError(f"S3 at {endpoint} refused to serve {what} ({code}: {message})")
    return ModelLoadError(f"could not read {what} from S3 at {endpoint}: {exc}")
