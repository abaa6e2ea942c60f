"""While the model is busy: health answers, a full queue is a 429, a departed client's work is dropped."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from maskserve.api.http.app import create_app
from maskserve.backends.base import EncodedBatch
from maskserve.core.engine import Engine
from maskserve.core.repository import load_engine
from maskserve.domain import Float32Array
from support.engines import settings_for
from support.waiting import HANG_S, set_within, until


class GatedBackend:
    """The real backend, held at a gate so a test decides when a batch finishes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.vocab_size, self.dtype, self.device = (
            inner.name,
            inner.vocab_size,
            inner.dtype,
            inner.device,
        )
        self.splits_by_length = inner.splits_by_length
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[int] = []

    def mask_logits(self, batch: EncodedBatch) -> Float32Array:
        self.started.set()
        self.gate.wait(HANG_S)
        self.batches.append(int(batch.input_ids.shape[0]))
        out: Float32Array = self.inner.mask_logits(batch)
        return out


@pytest.fixture
async def gated(bert_dir: Path) -> AsyncIterator[tuple[Engine, GatedBackend, httpx.AsyncClient]]:
    engine = load_engine(settings_for(bert_dir, model_name="bert", max_queue=2, max_batch_size=1))
    backend = GatedBackend(engine.backend)
    engine.backend = backend
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield engine, backend, client
    backend.gate.set()
    await engine.aclose()


async def test_health_and_metadata_answer_while_the_model_is_busy(gated: Any) -> None:
    _, backend, client = gated
    busy = asyncio.ensure_future(client.post("/v1/models/bert:predict", json={"instances": ["a [MASK] ."]}))
    await set_within(backend.started, "the model started")
    for url in ("/v2/health/ready", "/v2/health/live", "/v1/models/bert", "/v2/models/bert"):
        assert (await client.get(url)).status_code == 200
    assert not busy.done()
    backend.gate.set()
    assert (await busy).status_code == 200


async def test_a_full_queue_answers_429_with_retry_after(gated: Any) -> None:
    _, backend, client = gated
    first = asyncio.ensure_future(client.post("/", json={"inputs": "a [MASK] ."}))
    await set_within(backend.started, "the model started")
    queued = asyncio.ensure_future(client.post("/", json={"inputs": ["b [MASK] .", "c [MASK] ."]}))
    await until(lambda: gated[0].batcher.queued == 2 or queued.done(), "two inputs queued")
    assert not queued.done()
    r = await client.post("/", json={"inputs": "d [MASK] ."})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert "at capacity" in r.json()["error"]
    backend.gate.set()
    assert (await first).status_code == 200
    assert (await queued).status_code == 200
    assert (await client.post("/", json={"inputs": "e [MASK] ."})).status_code == 200


async def test_work_of_a_client_that_left_is_not_computed(gated: Any) -> None:
    engine, backend, client = gated
    first = asyncio.ensure_future(client.post("/", json={"inputs": "a [MASK] ."}))
    await set_within(backend.started, "the model started")
    leaving = asyncio.ensure_future(client.post("/", json={"inputs": "b [MASK] ."}))
    await until(lambda: engine.batcher.queued == 1 or leaving.done(), "the second input queued")
    assert not leaving.done()
    leaving.cancel()  # the client goes away; the ASGI transport reports a disconnect
    await until(leaving.done, "the departure reaches the server")
    assert not first.done()  # the model is still busy with the first request
    backend.gate.set()
    assert (await first).status_code == 200
    await client.post("/", json={"inputs": "c [MASK] ."})
    assert backend.batches == [1, 1]  # the first request and the last one; the departed one never ran
    assert engine.batcher.stats.dropped == 1
