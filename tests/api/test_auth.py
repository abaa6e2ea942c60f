"""API keys on HTTP: Bearer keys on inference and metadata, probes and metrics open unless protected."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from maskserve.api.http.app import create_app
from maskserve.api.keys import bearer_token, key_matches
from support.engines import engine_for, settings_for

KEY = "s3cret-key-1"
OTHER = "s3cret-key-2"
BODY = {"instances": ["a [MASK] ."]}


def _client(bert_dir: Path, **settings: object) -> httpx.AsyncClient:
    app = create_app(engine_for(bert_dir, model_name="bert"), settings_for(bert_dir, **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def keyed(bert_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(bert_dir, model_name="bert", api_key=(KEY, OTHER)) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/models/bert:predict"),
        ("POST", "/v2/models/bert/infer"),
        ("POST", "/models/bert"),
        ("POST", "/"),
        ("GET", "/v2/models/bert"),
        ("GET", "/v2"),
        ("GET", "/v1/models"),
    ],
)
async def test_protected_routes_need_a_valid_key(keyed: httpx.AsyncClient, method: str, path: str) -> None:
    missing = await keyed.request(method, path, json=BODY)
    assert missing.status_code == 401
    assert "no API key was sent" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = await keyed.request(method, path, json=BODY, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "not valid" in wrong.json()["error"]
    basic = await keyed.request(method, path, json=BODY, headers={"Authorization": f"Basic {KEY}"})
    assert basic.status_code == 401
    for key in (KEY, OTHER):
        ok = await keyed.request(method, path, json=BODY, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code != 401, ok.text


async def test_predict_with_a_key_answers(keyed: httpx.AsyncClient) -> None:
    response = await keyed.post(
        "/v1/models/bert:predict", json=BODY, headers={"authorization": f"bearer {KEY}"}
    )
    assert response.status_code == 200
    assert "predictions" in response.json()


@pytest.mark.parametrize(
    "path", ["/v2/health/live", "/v2/health/ready", "/v1/models/bert", "/v2/models/bert/ready", "/metrics"]
)
async def test_probes_and_metrics_stay_open(keyed: httpx.AsyncClient, path: str) -> None:
    assert (await keyed.get(path)).status_code == 200


async def test_protect_health_closes_probes_too(bert_dir: Path) -> None:
    async with _client(bert_dir, model_name="bert", api_key=(KEY,), protect_health=True) as client:
        for path in ("/v2/health/ready", "/metrics", "/v1/models/bert"):
            assert (await client.get(path)).status_code == 401
            assert (await client.get(path, headers={"Authorization": f"Bearer {KEY}"})).status_code == 200


async def test_key_file_and_no_keys_logged(
    bert_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# team keys\nfile-key-123\n\n", encoding="utf-8")
    caplog.set_level(logging.DEBUG)
    async with _client(bert_dir, model_name="bert", api_key_file=str(key_file)) as client:
        ok = await client.post(
            "/v1/models/bert:predict", json=BODY, headers={"Authorization": "Bearer file-key-123"}
        )
        bad = await client.post(
            "/v1/models/bert:predict", json=BODY, headers={"Authorization": "Bearer leaked-guess"}
        )
    assert (ok.status_code, bad.status_code) == (200, 401)
    assert "file-key-123" not in caplog.text
    assert "leaked-guess" not in caplog.text


async def test_open_server_ignores_authorization(bert_dir: Path) -> None:
    # huggingface_hub sends its token; a server without keys must not mind.
    async with _client(bert_dir, model_name="bert") as client:
        response = await client.post(
            "/models/bert", json={"inputs": "a [MASK] ."}, headers={"Authorization": "Bearer hf_x"}
        )
    assert response.status_code == 200


@pytest.mark.parametrize("header", ["Bearer: hf_doc_key", "Bearer:hf_doc_key", "bearer hf_doc_key"])
async def test_hf_documentation_header_form_is_accepted(bert_dir: Path, header: str) -> None:
    async with _client(bert_dir, model_name="bert", api_key=("hf_doc_key",)) as client:
        ok = await client.post(
            "/models/bert", json={"inputs": "a [MASK] ."}, headers={"Authorization": header}
        )
        wrong = await client.post(
            "/models/bert", json={"inputs": "a [MASK] ."}, headers={"Authorization": "Bearer: hf_other"}
        )
    assert ok.status_code == 200, ok.text
    assert wrong.status_code == 401


def test_key_helpers() -> None:
    assert bearer_token("Bearer abc ") == "abc"
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Bearer ") is None
    assert bearer_token("Token abc") is None
    assert bearer_token(None) is None
    # The Hugging Face Inference API's documentation writes "Bearer: hf_****".
    assert bearer_token("Bearer: abc") == "abc"
    assert bearer_token("Bearer:abc") == "abc"
    assert bearer_token("Bearer:") is None
    assert bearer_token("Bearerabc") is None
    assert bearer_token("Bearer: :abc") == ":abc"
    assert key_matches("abc", ["x", "abc"])
    assert not key_matches("ab", ["abc"])
    assert not key_matches("abc", [])
