"""s3:// sources against moto's S3 server on loopback, configured only through the environment, as KServe
configures its storage initializer."""

from __future__ import annotations

import socket
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from maskserve.errors import ModelLoadError
from maskserve.storage import S3Options, download_model, resolve_model_source
from storage.archives import MODEL_FILES, file, model_entries, tar_bytes, zip_bytes
from storage.checks import download_fails, files_of

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def moto_port() -> Iterator[int]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = int(server.get_host_and_port()[1])
    yield port
    server.stop()


@dataclass
class Bucket:
    name: str
    client: Any

    def put(self, key: str, body: bytes, **kwargs: Any) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body, **kwargs)

    def put_model(self, prefix: str) -> None:
        for name, data in MODEL_FILES.items():
            self.put(f"{prefix}{name}", data)


@pytest.fixture
def bucket(moto_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    """A fresh bucket, and the environment a KServe S3 secret sets: keys, a host:port endpoint, plain http."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("S3_ENDPOINT", f"127.0.0.1:{moto_port}")
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    monkeypatch.setenv("S3_VERIFY_SSL", "0")
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}")
    name = f"models-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield Bucket(name, client)
    request = urllib.request.Request(f"http://127.0.0.1:{moto_port}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


# --- what gets downloaded ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/"])
def test_prefix_is_a_directory(bucket: Bucket, parent: Path, suffix: str) -> None:
    bucket.put_model("models/bert/")
    bucket.put("models/bert/", b"")  # a "directory marker", as consoles create
    bucket.put("models/bert/sub/vocab.txt", b"[MASK]")
    bucket.put("models/bert-large/config.json", b"{}")  # shares the prefix as a string, not as a directory
    bucket.put("models/bert.txt", b"no")

    dest = download_model(f"s3://{bucket.name}/models/bert{suffix}", parent / "bert")

    assert files_of(dest) == {**MODEL_FILES, "sub/vocab.txt": b"[MASK]"}
    assert [p.name for p in parent.iterdir()] == ["bert"]


def test_whole_bucket(bucket: Bucket, parent: Path) -> None:
    bucket.put_model("")
    assert files_of(download_model(f"s3://{bucket.name}", parent / "bert")) == MODEL_FILES


@pytest.mark.parametrize("key", ["bert.tar.gz", "bert.zip"])
def test_single_archive_is_unpacked(bucket: Bucket, parent: Path, key: str) -> None:
    body = tar_bytes(model_entries("bert/")) if key.endswith(".tar.gz") else zip_bytes(model_entries())
    bucket.put(f"models/bert/{key}", body)
    bucket.put(f"models/{key}", body)
    # a prefix holding one archive, and the archive named exactly
    assert files_of(download_model(f"s3://{bucket.name}/models/bert", parent / "a")) == MODEL_FILES
    assert files_of(download_model(f"s3://{bucket.name}/models/{key}", parent / "b")) == MODEL_FILES


def test_single_object_that_is_no_archive(bucket: Bucket, parent: Path) -> None:
    bucket.put("models/model.safetensors", b"w")
    download_fails(f"s3://{bucket.name}/models/model.safetensors", parent, "is a single object, not a prefix")


def test_anonymous_access(bucket: Bucket, parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket.client.put_bucket_acl(Bucket=bucket.name, ACL="public-read")
    for name, data in MODEL_FILES.items():
        bucket.put(f"bert/{name}", data, ACL="public-read")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    download_fails(f"s3://{bucket.name}/bert", parent, "no usable AWS credentials")

    monkeypatch.setenv("awsAnonymousCredential", "true")
    assert files_of(download_model(f"s3://{bucket.name}/bert", parent / "bert")) == MODEL_FILES


def test_resolve_downloads_once(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put_model("bert/")
    first = resolve_model_source(f"s3://{bucket.name}/bert", cache_dir=tmp_path / "cache")
    assert first.parent == tmp_path / "cache" / "maskserve-downloads"
    assert files_of(first) == MODEL_FILES

    bucket.put("bert/config.json", b"changed")  # a complete earlier download is reused as it is
    assert resolve_model_source(f"s3://{bucket.name}/bert", cache_dir=tmp_path / "cache") == first
    assert (first / "config.json").read_bytes() == MODEL_FILES["config.json"]


# --- failures leave nothing behind -------------------------------------------------------------------------


def test_object_that_fails_midway(bucket: Bucket, parent: Path) -> None:
    bucket.put_model("bert/")
    # listed after the others; GetObject on an archived object is refused with InvalidObjectState
    bucket.put("bert/zz-archived.bin", b"cold", StorageClass="GLACIER")
    message = download_fails(f"s3://{bucket.name}/bert", parent, "InvalidObjectState")
    assert f"s3://{bucket.name}/bert/zz-archived.bin" in message


def test_empty_prefix(bucket: Bucket, parent: Path) -> None:
    bucket.put_model("bert/")
    message = download_fails(
        f"s3://{bucket.name}/roberta", parent, f"no objects found under s3://{bucket.name}/roberta"
    )
    assert "check the bucket name and the prefix" in message


def test_only_directory_markers(bucket: Bucket, parent: Path) -> None:
    bucket.put("bert/", b"")
    download_fails(f"s3://{bucket.name}/bert", parent, "holds no files")


def test_missing_bucket(bucket: Bucket, parent: Path) -> None:
    download_fails("s3://no-such-bucket-here/bert", parent, "S3 bucket 'no-such-bucket-here' does not exist")


def test_unsafe_key(bucket: Bucket, parent: Path, tmp_path: Path) -> None:
    bucket.put_model("bert/")
    bucket.put("bert/../../../evil", b"x")
    download_fails(f"s3://{bucket.name}/bert", parent, "unsafe object key")
    assert not list(tmp_path.rglob("evil"))


def test_unreachable_endpoint(parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("S3_ENDPOINT", f"127.0.0.1:{port}")
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no retries: fail at once
    message = download_fails(
        "s3://some-bucket/bert", parent, f"cannot reach the S3 endpoint http://127.0.0.1:{port}"
    )
    assert "S3_ENDPOINT" in message


def test_boto3_missing(parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now raises ImportError
    download_fails("s3://some-bucket/bert", parent, r"pip install 'maskserve\[s3\]'")


# --- the environment, read as KServe reads it --------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({}, None),
        ({"S3_ENDPOINT": "minio.svc:9000"}, "https://minio.svc:9000"),
        ({"S3_ENDPOINT": "minio.svc:9000", "S3_USE_HTTPS": "0"}, "http://minio.svc:9000"),
        ({"S3_ENDPOINT": "minio.svc:9000", "S3_USE_HTTPS": "1"}, "https://minio.svc:9000"),
        ({"S3_ENDPOINT": "http://minio.svc"}, "http://minio.svc"),
        ({"S3_ENDPOINT": "minio.svc", "AWS_ENDPOINT_URL": "http://other:1"}, "http://other:1"),
        ({"AWS_ENDPOINT_URL": "http://other:1", "AWS_ENDPOINT_URL_S3": "http://s3only:2"}, "http://s3only:2"),
    ],
)
def test_endpoint_from_env(env: dict[str, str], endpoint: str | None) -> None:
    assert S3Options.from_env(env).endpoint_url == endpoint


@pytest.mark.parametrize(
    ("value", "verify"), [(None, None), ("0", False), ("false", False), ("False", False), ("1", True)]
)
def test_verify_ssl_from_env(value: str | None, verify: bool | None) -> None:
    assert S3Options.from_env({} if value is None else {"S3_VERIFY_SSL": value}).verify is verify


def test_ca_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("pem")
    assert S3Options.from_env({"AWS_CA_BUNDLE": str(bundle)}).verify == str(bundle)
    assert S3Options.from_env({"AWS_CA_BUNDLE": str(bundle), "S3_VERIFY_SSL": "0"}).verify is False
    with pytest.raises(ModelLoadError, match=r"AWS_CA_BUNDLE names .* which is not a file"):
        S3Options.from_env({"AWS_CA_BUNDLE": str(tmp_path / "missing.pem")})


def test_kserve_switches() -> None:
    options = S3Options.from_env(
        {"awsAnonymousCredential": "True", "S3_USER_VIRTUAL_BUCKET": "true", "S3_USE_ACCELERATE": "true"}
    )
    assert (options.anonymous, options.virtual_addressing, options.accelerate) == (True, True, True)
    assert S3Options.from_env({"awsAnonymousCredential": "1"}).anonymous is False  # KServe: "true" only


def test_large_prefix_keeps_nested_layout(bucket: Bucket, parent: Path) -> None:
    entries = {f"bert/shard-{i:02d}/part.bin": bytes([i]) * 10 for i in range(12)}
    for key, body in entries.items():
        bucket.put(key, body)
    bucket.put("bert/config.json", file("config.json", b"{}").data)
    dest = download_model(f"s3://{bucket.name}/bert", parent / "bert")
    assert files_of(dest) == {
        **{k.removeprefix("bert/"): v for k, v in entries.items()},
        "config.json": b"{}",
    }


def test_access_denied(bucket: Bucket, parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket.put_model("bert/")  # private: unsigned requests are refused
    monkeypatch.setenv("awsAnonymousCredential", "true")
    message = download_fails(
        f"s3://{bucket.name}/bert", parent, f"access to s3://{bucket.name}/bert.* was denied"
    )
    assert "AWS_ACCESS_KEY_ID" in message
