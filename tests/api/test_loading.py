"""While the model loads: liveness yes, readiness no, HF routes 503 with estimated_time or wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from maskserve.api.http.app import create_app
from maskserve.core.slot import ModelSlot
from support.engines import engine_for, settings_for
from support.waiting import HANG_S, until


@pytest.fixture
async def loading(bert_dir: Path) -> AsyncIterator[tuple[ModelSlot, httpx.AsyncClient]]:
    slot = ModelSlot("bert", "org/bert-tiny", expected_load_s=25)
    # Waiting requests are woken by the model becoming ready; their own limit never decides a test.
    app = create_app(slot, settings_for(bert_dir, model_name="bert", max_wait_for_model_s=3600))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield slot, client


async def test_probes_while_loading_then_ready(
    bert_dir: Path, loading: tuple[ModelSlot, httpx.AsyncClient]
) -> None:
    slot, client = loading
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    for path in ("/v2/health/ready", "/v1/models/bert", "/v2/models/bert/ready", "/v2/models/bert"):
        response = await client.get(path)
        assert response.status_code == 503, path
        assert "not ready" in response.json()["error"]
    assert (await client.get("/v1/models/nope")).status_code == 404
    slot.set_ready(engine_for(bert_dir, model_name="bert"))
    for path in ("/v2/health/ready", "/v1/models/bert", "/v2/models/bert/ready", "/v2/models/bert"):
        assert (await client.get(path)).status_code == 200, path


async def test_inference_routes_answer_503_while_loading(
    loading: tuple[ModelSlot, httpx.AsyncClient],
) -> None:
    _, client = loading
    v1 = await client.post("/v1/models/bert:predict", json={"instances": ["a [MASK]"]})
    assert v1.status_code == 503
    assert v1.json()["error"] == "Model with name bert is not ready."
    hf = await client.post("/models/org/bert-tiny", json={"inputs": "a [MASK]"})
    assert hf.status_code == 503
    body = hf.json()
    assert body["error"] == "Model org/bert-tiny is currently loading"
    assert 1 <= body["estimated_time"] <= 25
    assert int(hf.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("headers", "options"),
    [({"x-wait-for-model": "true"}, None), ({"X-Wait-For-Model": "1"}, None), ({}, {"wait_for_model": True})],
)
async def test_wait_for_model_waits_then_answers(
    bert_dir: Path,
    loading: tuple[ModelSlot, httpx.AsyncClient],
    headers: dict[str, str],
    options: dict[str, bool] | None,
) -> None:
    slot, client = loading
    body: dict[str, object] = {"inputs": "a [MASK] ."}
    if options:
        body["options"] = options
    engine = engine_for(bert_dir, model_name="bert")
    request = asyncio.ensure_future(client.post("/", json=body, headers=headers))
    # The request is inside the slot's wait for the model (a request that did not wait is answered).
    await until(lambda: slot._changed is not None or request.done(), "the request waits for the model")
    assert not request.done()
    slot.set_ready(engine)
    response = await asyncio.wait_for(request, HANG_S)
    assert response.status_code == 200
    assert response.json()[0]["token_str"]


async def test_wait_header_false_and_bad_values(loading: tuple[ModelSlot, httpx.AsyncClient]) -> None:
    _, client = loading
    no_wait = await client.post("/", json={"inputs": "a [MASK]"}, headers={"x-wait-for-model": "0"})
    assert no_wait.status_code == 503
    bad = await client.post("/", json={"inputs": "a [MASK]"}, headers={"x-wait-for-model": "perhaps"})
    assert bad.status_code == 400
    assert "x-wait-for-model must be true or false" in bad.json()["error"]


async def test_failed_load_is_reported_not_ready(loading: tuple[ModelSlot, httpx.AsyncClient]) -> None:
    slot, client = loading
    slot.set_failed("weights are missing")
    response = await client.get("/v2/health/ready")
    assert response.status_code == 503
    assert "weights are missing" in response.json()["error"]
    waited = await client.post("/", json={"inputs": "a [MASK]", "options": {"wait_for_model": True}})
    assert waited.status_code == 503


async def test_draining_turns_readiness_off_but_finishes_requests(
    bert_dir: Path, loading: tuple[ModelSlot, httpx.AsyncClient]
) -> None:
    slot, client = loading
    slot.set_ready(engine_for(bert_dir, model_name="bert"))
    slot.set_stopping()
    for path in ("/v2/health/ready", "/v1/models/bert", "/v2/models/bert/ready"):
        response = await client.get(path)
        assert response.status_code == 503, path
        assert "shutting down" in response.json()["error"]
    assert (
        await client.post("/v1/models/bert:predict", json={"instances": ["a [MASK] ."]})
    ).status_code == 200
