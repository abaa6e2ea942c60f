"""Two models under churn with room for one (--max_models 1), over every protocol at once while the
repository API unloads and loads them: no 5xx, no request lost, every answer the model's own, and never
more than one model loaded. Bounded by request count, not by time."""

from __future__ import annotations

import asyncio
import gc
import random
import weakref
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from maskserve.api.grpc.service import start_grpc_server
from maskserve.api.http.app import create_app
from maskserve.config import Settings
from maskserve.core.metrics import Metrics
from maskserve.core.repository import build_registry, load_at_start
from maskserve.core.slot import ModelState
from maskserve.params import FillMaskParams
from maskserve.protocols.hf import render_hf_response
from support.engines import engine_for

ROUNDS = 8  # requests per client per model
CYCLES = 6  # unload + load by the repository API
TEXTS = {"bert": "the [MASK] sat on the mat .", "roberta": "the <mask> sat on the mat ."}


class Loaded:
    """Counts the loaded models at every change of state."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.most = 0

    def on_state(self, name: str, state: ModelState) -> None:
        self.most = max(self.most, len(self.registry.loaded()))

    def on_load(self, name: str, seconds: float, ok: bool) -> None: ...

    def on_unload(self, name: str, evicted: bool) -> None: ...

    def on_wait(self, name: str, seconds: float) -> None: ...

    def on_resident(self, name: str, loaded: int, weight_bytes: int) -> None:
        self.most = max(self.most, loaded)


async def test_churn_over_every_protocol_loses_nothing(bert_dir: Path, roberta_dir: Path) -> None:  # noqa: PLR0915
    dirs = {"bert": bert_dir, "roberta": roberta_dir}
    expected: dict[str, dict[str, Any]] = {}
    for name, path in dirs.items():
        own = engine_for(path, model_name=name, cache_size=0)
        expected[name] = {
            "hf": render_hf_response(await own.fill_mask([TEXTS[name]], FillMaskParams()), unwrap=True),
            "top1": [str(v) for v in await own.kserve_values([TEXTS[name]])],
        }
    settings = Settings(
        log_level="warning",
        backend="torch",
        models=tuple(f"{n}={p}" for n, p in dirs.items()),
        max_models=1,
        enable_repository_api=True,
        max_wait_for_model_s=120,
        cache_size=0,
    )
    metrics = Metrics("model")
    registry = build_registry(settings, metrics)
    loaded = Loaded(registry)
    registry.add_observer(loaded)
    await load_at_start(registry)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(registry, settings, metrics)),
        base_url="http://t",
        timeout=120,
    )
    server, port = await start_grpc_server(registry, host="127.0.0.1", port=0, max_wait_for_model_s=120)
    answers: list[tuple[str, str, int, Any]] = []

    async def hf(name: str) -> None:
        r = await client.post(
            f"/models/{name}", json={"inputs": TEXTS[name]}, headers={"x-wait-for-model": "true"}
        )
        answers.append(("hf", name, r.status_code, r.json()))

    async def v1(name: str) -> None:
        r = await client.post(f"/v1/models/{name}:predict", json={"instances": [TEXTS[name]]})
        answers.append(("v1", name, r.status_code, r.json().get("predictions")))

    async def v2(name: str) -> None:
        body = {"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [TEXTS[name]]}]}
        r = await client.post(f"/v2/models/{name}/infer", json=body)
        answers.append(("v2", name, r.status_code, r.json().get("outputs", [{}])[0].get("data")))

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        async def grpc_infer(name: str) -> None:
            request = pb.ModelInferRequest(model_name=name)
            tensor = request.inputs.add(name="input-0", datatype="BYTES", shape=[1])
            tensor.contents.bytes_contents.append(TEXTS[name].encode())
            try:
                reply = await stub.ModelInfer(request, timeout=120)
            except grpc.aio.AioRpcError as exc:
                answers.append(
                    ("grpc", name, 500 if exc.code() != grpc.StatusCode.UNAVAILABLE else 503, None)
                )
                return
            data = [b.decode() for b in reply.outputs[0].contents.bytes_contents]
            answers.append(("grpc", name, 200, data))

        async def client_loop(call: Any, seed: int) -> None:
            order = [name for name in dirs for _ in range(ROUNDS)]
            random.Random(seed).shuffle(order)
            for name in order:
                await call(name)

        async def churn() -> None:
            rng = random.Random(7)
            for _ in range(CYCLES):
                name = rng.choice(list(dirs))
                assert (await client.post(f"/v2/repository/models/{name}/unload")).status_code == 200
                assert (await client.post(f"/v2/repository/models/{name}/load")).status_code == 200

        try:
            await asyncio.gather(
                *(client_loop(call, seed) for seed, call in enumerate((hf, v1, v2, grpc_infer))), churn()
            )
        finally:
            await server.stop(None)
            await client.aclose()
            await registry.aclose()

    assert len(answers) == 4 * 2 * ROUNDS  # nothing lost
    failed = [(protocol, name, status) for protocol, name, status, _ in answers if status != 200]
    assert failed == []
    for protocol, name, _, body in answers:
        if protocol == "hf":  # in batches of other sizes the scores may differ in the last bits
            want = expected[name]["hf"]
            assert [c["token"] for c in body] == [c["token"] for c in want], name
            assert [c["score"] for c in body] == pytest.approx([c["score"] for c in want], rel=1e-5)
        else:
            assert body == expected[name]["top1"], (protocol, name)
    assert loaded.most == 1  # the budget held all along
    body = metrics.render(None)[0].decode()
    assert "maskserve_model_evictions_total" in body


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
async def test_an_unload_frees_the_models_objects(bert_dir: Path, backend: str) -> None:
    """After an unload nothing holds the engine, its backend (module or session), its tokenizer or its
    batcher: they are freed, not kept alive by a cache, a hook, a thread or a task."""
    settings = Settings(log_level="warning", backend=backend, models=(f"a={bert_dir}",), cache_size=16)
    registry = build_registry(settings, Metrics("model"))
    await load_at_start(registry)
    engine = registry.get("a").engine
    assert engine is not None
    await engine.fill_mask([TEXTS["bert"]], FillMaskParams())
    attribute = {"torch": "_model", "onnx": "_session", "openvino": "_compiled"}[backend]
    inner = getattr(engine.backend, attribute)
    refs = {
        "engine": weakref.ref(engine),
        "backend": weakref.ref(engine.backend),
        "model, session or compiled model": weakref.ref(inner),
        "tokenizer": weakref.ref(engine.encoder.tokenizer),
        "batcher": weakref.ref(engine.batcher),
    }
    del engine, inner
    await registry.unload("a")
    for _ in range(100):  # a few turns of the loop at most, for the last callbacks of the closed batcher
        gc.collect()
        alive = [name for name, ref in refs.items() if ref() is not None]
        if not alive:
            break
        await asyncio.sleep(0)
    assert alive == []
    await registry.aclose()
