"""Which source a model string names, and gs:// without google-cloud-storage."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from maskserve.errors import ModelLoadError
from maskserve.storage import HubRef, ModelURI, download_model, parse_model_uri, resolve_model_source


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("s3://bucket", ModelURI("s3", "s3://bucket", bucket="bucket")),
        (
            "s3://my.bucket/models/bert/",
            ModelURI("s3", "s3://my.bucket/models/bert/", bucket="my.bucket", key="models/bert/"),
        ),
        ("S3://bucket/m.tgz", ModelURI("s3", "S3://bucket/m.tgz", bucket="bucket", key="m.tgz")),
        ("gs://bkt/a/b", ModelURI("gs", "gs://bkt/a/b", bucket="bkt", key="a/b")),
        ("gs://my_bucket", ModelURI("gs", "gs://my_bucket", bucket="my_bucket")),
        ("https://example.com/m.tgz?sig=1", ModelURI("http", "https://example.com/m.tgz?sig=1")),
        ("http://[::1]:8000/m.zip", ModelURI("http", "http://[::1]:8000/m.zip")),
        ("hf://org/name@v2", ModelURI("hub", "hf://org/name@v2", hub=HubRef("org/name", "v2"))),
        ("HF://org/name", ModelURI("hub", "HF://org/name", hub=HubRef("org/name", None))),
        ("org/name", ModelURI("hub", "org/name", hub=HubRef("org/name", None))),
        ("file:///srv/my%20model", ModelURI("local", "file:///srv/my%20model", path=Path("/srv/my model"))),
        ("/srv/models/bert", ModelURI("local", "/srv/models/bert", path=Path("/srv/models/bert"))),
    ],
)
def test_parse_model_uri(source: str, expected: ModelURI) -> None:
    assert parse_model_uri(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("s3://", r"invalid s3:// URI 's3://': expected s3://bucket\[/prefix\]"),
        ("s3:///models", "invalid s3:// URI"),
        ("gs://a", "invalid gs:// URI"),
        ("gs://bad bucket/x", "invalid gs:// URI"),
        ("https:///m.tgz", "names no host"),
        ("http://host:99999999/m.tgz", "invalid model URL"),
        ("hdfs://namenode/models/bert", r"unsupported model URI scheme hdfs://.*s3://, gs://"),
        ("azure://account/container", "unsupported model URI scheme azure://"),
        ("hf://a/b/c", "invalid Hub reference"),
    ],
)
def test_invalid_uris(source: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        parse_model_uri(source)


def test_display_hides_url_secrets() -> None:
    uri = parse_model_uri("https://user:pw@example.com:8443/m.tgz?X-Amz-Signature=abc")
    assert uri.display == "https://example.com:8443/m.tgz"
    assert parse_model_uri("s3://bkt/k?x").display == "s3://bkt/k?x"


def test_gcs_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("google.cloud.storage", "google.auth.exceptions", "google.api_core.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)  # as if google-cloud-storage were not installed
    with pytest.raises(ModelLoadError, match=r"gs:// model URIs need google-cloud-storage.*maskserve\[gcs\]"):
        download_model("gs://bucket/models/bert", tmp_path / "bert")
    with pytest.raises(ModelLoadError, match=r"pip install 'maskserve\[gcs\]'"):
        resolve_model_source("gs://bucket/models/bert", cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert list((tmp_path / "cache").rglob("*")) == [tmp_path / "cache" / "maskserve-downloads"]


def test_revision_is_for_hub_sources_only(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="a revision applies to Hugging Face Hub models only"):
        download_model("s3://bucket/bert", tmp_path / "bert", revision="v1")
    assert list(tmp_path.iterdir()) == []
