"""Several models in one server: a repository folder and --model NAME=URI, every route by name, the
repository API, the budget (least recently used idle model unloaded; when every model is busy, one drains and
goes, never a model beside the budget), a model that fails to load beside others that serve, and one model's
flood not holding up another."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from maskserve.api.http.app import create_app
from maskserve.config import Settings
from maskserve.core.engine import Engine
from maskserve.core.metrics import Metrics
from maskserve.core.registry import ModelRegistry
from maskserve.core.repository import build_registry, load_at_start
from maskserve.core.slot import ModelState
from support.waiting import until

BERT_TEXT = "the [MASK] sat on the mat ."
ROBERTA_TEXT = "the <mask> sat on the mat ."


@pytest.fixture(scope="module")
def repository(
    tmp_path_factory: pytest.TempPathFactory, bert_dir: Path, roberta_dir: Path, not_mlm_dir: Path
) -> Path:
    root = tmp_path_factory.mktemp("repository")
    shutil.copytree(bert_dir, root / "bert")
    shutil.copytree(roberta_dir, root / "roberta")
    shutil.copytree(not_mlm_dir, root / "classifier")
    (root / "notes").mkdir()  # a folder without config.json is not a model
    return root


class Served:
    def __init__(self, registry: ModelRegistry, client: httpx.AsyncClient, metrics: Metrics) -> None:
        self.registry = registry
        self.client = client
        self.metrics = metrics


async def _serve(**settings: Any) -> tuple[ModelRegistry, httpx.AsyncClient, Metrics]:
    full = Settings(log_level="warning", **settings)
    metrics = Metrics("model")
    registry = build_registry(full, metrics)
    await load_at_start(registry)
    app = create_app(registry, full, metrics)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return registry, client, metrics


@pytest.fixture
async def served(repository: Path) -> AsyncIterator[Served]:
    registry, client, metrics = await _serve(model_repository=str(repository), enable_repository_api=True)
    try:
        yield Served(registry, client, metrics)
    finally:
        await client.aclose()
        await registry.aclose()


def _hold(engine: Engine) -> threading.Event:
    """Make the engine's model wait for the returned event before each batch (a model busy on demand)."""
    gate = threading.Event()
    real = engine.backend.mask_logits

    def held(batch: Any) -> np.ndarray:
        gate.wait(60)
        return real(batch)

    engine.backend.mask_logits = held  # type: ignore[method-assign]
    return gate


def _v2(text: str) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [text]}]}


async def test_every_route_takes_the_model_by_name(served: Served) -> None:
    client = served.client
    assert (await client.get("/v1/models")).json() == {"models": ["bert", "classifier", "roberta"]}
    for name, text in (("bert", BERT_TEXT), ("roberta", ROBERTA_TEXT)):
        v1 = await client.post(f"/v1/models/{name}:predict", json={"instances": [text]})
        assert v1.status_code == 200, v1.text
        v2 = await client.post(f"/v2/models/{name}/infer", json=_v2(text))
        assert v2.json()["outputs"][0]["data"] == v1.json()["predictions"]
        hf = await client.post(f"/models/{name}", json={"inputs": text})
        assert hf.json()[0]["token_str"] == v1.json()["predictions"][0]
        meta = (await client.get(f"/v2/models/{name}")).json()
        assert meta["name"] == name
        assert (await client.get(f"/v2/models/{name}/ready")).json() == {"name": name, "ready": True}
    # Each model answers with its own tokenizer: RoBERTa's mask token is refused by BERT.
    wrong = await client.post("/models/bert", json={"inputs": ROBERTA_TEXT})
    assert wrong.status_code == 400


async def test_a_folder_that_is_not_a_fill_mask_model_is_refused_with_the_reason(served: Served) -> None:
    client = served.client
    index = {m["name"]: m for m in (await client.post("/v2/repository/index")).json()}
    assert set(index) == {"bert", "classifier", "roberta"}
    assert index["bert"]["state"] == "READY"
    assert index["classifier"]["state"] == "UNAVAILABLE"
    assert "not a masked language model" in index["classifier"]["reason"]
    answer = await client.post("/models/classifier", json={"inputs": BERT_TEXT})
    assert answer.status_code == 400
    assert "not a masked language model" in answer.json()["error"]
    # The others serve, and the server is ready: the failed model settled.
    assert (await client.get("/v2/health/ready")).status_code == 200
    assert (await client.post("/models/bert", json={"inputs": BERT_TEXT})).status_code == 200


async def test_unknown_model_is_a_404_naming_the_models(served: Served) -> None:
    answer = await served.client.post("/v1/models/nope:predict", json={"instances": [BERT_TEXT]})
    assert answer.status_code == 404
    assert (
        answer.json()["error"]
        == "Model with name nope does not exist. Models served here: bert, classifier, roberta."
    )


async def test_repository_api_loads_once_and_unload_drains(served: Served) -> None:
    client, registry = served.client, served.registry
    loads_before = _loads(served.metrics, "bert")
    # Loading a loaded model is no new load.
    assert (await client.post("/v2/repository/models/bert/load")).json() == {
        "name": "bert",
        "load": True,
        "unload": None,
    }
    assert _loads(served.metrics, "bert") == loads_before
    # A request in flight when the unload begins still gets its answer; then the model is gone.
    engine = registry.get("bert").engine
    assert engine is not None
    gate = _hold(engine)
    in_flight = asyncio.ensure_future(client.post("/models/bert", json={"inputs": "a held [MASK] ."}))
    await until(lambda: engine.active == 1, "the request is inside the engine")
    unload = asyncio.ensure_future(client.post("/v2/repository/models/bert/unload"))
    await until(lambda: registry.get("bert").state is ModelState.UNLOADING, "the unload began")
    refused = await client.post(
        "/models/bert", json={"inputs": BERT_TEXT, "options": {"wait_for_model": False}}
    )
    assert refused.status_code == 503
    gate.set()
    assert (await in_flight).status_code == 200
    assert (await unload).json()["unload"] is True
    assert registry.get("bert").state is ModelState.UNAVAILABLE
    index = {m["name"]: m["state"] for m in (await client.post("/v2/repository/index")).json()}
    assert index["bert"] == "UNAVAILABLE"
    # Loaded again on request (V1 waits for it).
    again = await client.post("/v1/models/bert:predict", json={"instances": [BERT_TEXT]})
    assert again.status_code == 200
    assert _loads(served.metrics, "bert") == loads_before + 1


def _loads(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(
        "maskserve_model_loads_total", {"model_name": name, "outcome": "loaded"}
    )
    return value or 0.0


async def test_repository_api_is_off_by_default(repository: Path) -> None:
    registry, client, _ = await _serve(models=(f"bert={repository / 'bert'}",))
    try:
        for path in ("/v2/repository/index", "/v2/repository/models/bert/unload"):
            answer = await client.post(path)
            assert answer.status_code == 404
            assert "--enable_repository_api" in answer.json()["error"]  # why, and what to change
        assert registry.get("bert").state is ModelState.READY
    finally:
        await client.aclose()
        await registry.aclose()


async def test_budget_unloads_the_least_recently_used_idle_model(repository: Path) -> None:
    registry, client, metrics = await _serve(
        models=(f"a={repository / 'bert'}", f"b={repository / 'roberta'}", f"c={repository / 'bert'}"),
        max_models=2,
    )
    try:
        states = {s.name: s.state for s in registry.slots}
        assert states == {"a": ModelState.READY, "b": ModelState.READY, "c": ModelState.UNAVAILABLE}
        assert (await client.get("/v2/health/ready")).status_code == 200
        await client.post("/models/a", json={"inputs": BERT_TEXT})  # b is now the least recently used
        loaded_while_loading: list[list[str]] = []
        real_loader = registry._loader
        assert real_loader is not None

        def loader(slot: Any) -> Any:
            loaded_while_loading.append(sorted(s.name for s in registry.loaded()))
            return real_loader(slot)

        registry._loader = loader
        waited = await client.post(
            "/models/c", json={"inputs": BERT_TEXT}, headers={"x-wait-for-model": "true"}
        )
        assert waited.status_code == 200, waited.text
        states = {s.name: s.state for s in registry.slots}
        assert states == {"a": ModelState.READY, "b": ModelState.UNAVAILABLE, "c": ModelState.READY}
        # The room was made before c loaded (its size is known from its folder): never three at once.
        assert loaded_while_loading == [["a"]]
        assert metrics.registry.get_sample_value("maskserve_models_loaded") == 2
        assert metrics.registry.get_sample_value("maskserve_model_unloads_total", {"model_name": "b"}) == 1
    finally:
        await client.aclose()
        await registry.aclose()


async def test_when_every_model_is_busy_the_budget_still_holds(repository: Path) -> None:
    registry, client, _ = await _serve(
        models=(f"a={repository / 'bert'}", f"b={repository / 'roberta'}"), max_models=1
    )
    try:
        engine = registry.get("a").engine
        assert engine is not None
        assert registry.get("b").state is ModelState.UNAVAILABLE
        gate = _hold(engine)
        busy = asyncio.ensure_future(client.post("/models/a", json={"inputs": "a busy [MASK] ."}))
        await until(lambda: engine.active == 1, "a's request is inside its engine")
        other = asyncio.ensure_future(
            client.post("/models/b", json={"inputs": ROBERTA_TEXT}, headers={"x-wait-for-model": "true"})
        )
        # a stops taking new requests and finishes the one in flight; b waits for it, never loading beside it.
        await until(lambda: registry.get("a").state is ModelState.UNLOADING, "a is on its way out")
        assert [s.name for s in registry.loaded()] == ["a"]
        assert not other.done()
        gate.set()
        assert (await busy).status_code == 200
        assert (await other).status_code == 200
        assert [s.name for s in registry.loaded()] == ["b"]
    finally:
        await client.aclose()
        await registry.aclose()


async def test_a_flood_on_one_model_does_not_hold_up_another(repository: Path) -> None:
    # Each model has its own batcher and model thread: with a's model stuck on a batch and more of a's
    # requests queued behind it, b still answers.
    registry, client, _ = await _serve(models=(f"a={repository / 'bert'}", f"b={repository / 'roberta'}"))
    try:
        engine = registry.get("a").engine
        assert engine is not None
        gate = _hold(engine)
        flood = [
            asyncio.ensure_future(client.post("/models/a", json={"inputs": f"flood {i} [MASK] ."}))
            for i in range(20)
        ]
        await until(lambda: engine.active == 20, "the flood is inside a's engine")
        for _ in range(5):
            answer = await client.post(
                "/models/b", json={"inputs": ROBERTA_TEXT, "options": {"use_cache": False}}
            )
            assert answer.status_code == 200
        assert not any(f.done() for f in flood)  # a's requests were still waiting all along
        gate.set()
        assert all(r.status_code == 200 for r in await asyncio.gather(*flood))
    finally:
        await client.aclose()
        await registry.aclose()


async def test_metrics_carry_each_model_name(served: Served) -> None:
    await served.client.post("/models/bert", json={"inputs": BERT_TEXT})
    await served.client.post("/models/roberta", json={"inputs": ROBERTA_TEXT})
    body = (await served.client.get("/metrics")).text
    for name in ("bert", "roberta"):
        assert f'request_predict_seconds_count{{model_name="{name}"}}' in body
        assert f'maskserve_model_state{{model_name="{name}",state="ready"}} 1.0' in body
        assert f'maskserve_model_weight_bytes{{model_name="{name}"}}' in body
    assert 'maskserve_model_state{model_name="classifier",state="failed"} 1.0' in body
    assert 'maskserve_model_loads_total{model_name="classifier",outcome="failed"} 1.0' in body
