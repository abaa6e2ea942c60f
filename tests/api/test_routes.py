"""The three HTTP contracts, with the KServe guide's own requests."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from api.conftest import client_for
from support.engines import engine_for

GUIDE_TEXTS = ["The capital of France is [MASK].", "The capital of [MASK] is paris."]
V2_GUIDE = {"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": GUIDE_TEXTS}]}


async def _expected_top1(bert_dir: Path) -> list[str]:
    return [str(v) for v in await engine_for(bert_dir, model_name="bert").kserve_values(GUIDE_TEXTS)]


async def test_v1_guide_request(client: httpx.AsyncClient, bert_dir: Path) -> None:
    r = await client.post("/v1/models/bert:predict", json={"instances": GUIDE_TEXTS})
    assert r.status_code == 200
    assert r.json() == {"predictions": await _expected_top1(bert_dir)}


async def test_v1_model_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/models")).json() == {"models": ["bert"]}
    assert (await client.get("/v1/models/bert")).json() == {"name": "bert", "ready": True}
    r = await client.get("/v1/models/other")
    assert r.status_code == 404
    assert r.json() == {"error": "Model with name other does not exist. Models served here: bert."}


async def test_v1_with_parameters_returns_candidates(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/models/bert:predict",
        json={"instances": ["the [MASK] sat ."], "parameters": {"top_k": 2, "targets": ["cat", "dog"]}},
    )
    preds = r.json()["predictions"]
    assert len(preds) == 1
    assert [p["token_str"] for p in preds[0]] in (["cat", "dog"], ["dog", "cat"])


async def test_v2_guide_request(client: httpx.AsyncClient, bert_dir: Path) -> None:
    r = await client.post("/v2/models/bert/infer", json=V2_GUIDE)
    assert r.status_code == 200
    body = r.json()
    assert body["model_name"] == "bert"
    assert body["model_version"] is None
    assert body["parameters"] is None
    assert len(body["id"]) == 36
    assert body["outputs"] == [
        {
            "name": "output-0",
            "shape": [2],
            "datatype": "BYTES",
            "parameters": None,
            "data": await _expected_top1(bert_dir),
        }
    ]
    echoed = await client.post("/v2/models/bert/infer", json={**V2_GUIDE, "id": "req-42"})
    assert echoed.json()["id"] == "req-42"


async def test_v2_health_and_metadata(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    assert (await client.get("/v2/models/bert/ready")).json() == {"name": "bert", "ready": True}
    server = (await client.get("/v2")).json()
    assert server["name"] == "maskserve"
    assert "version" in server
    assert "extensions" in server
    meta = (await client.get("/v2/models/bert")).json()
    assert meta["name"] == "bert"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"][0] == {"name": "output-0", "datatype": "BYTES", "shape": [-1]}


async def test_v2_topk_outputs(client: httpx.AsyncClient, bert_dir: Path) -> None:
    payload = {
        **V2_GUIDE,
        "outputs": [{"name": n} for n in ("token_str", "score", "token", "sequence")],
        "parameters": {"top_k": 3},
    }
    outputs = {
        o["name"]: o for o in (await client.post("/v2/models/bert/infer", json=payload)).json()["outputs"]
    }
    assert outputs["score"]["datatype"] == "FP32"
    assert outputs["token"]["datatype"] == "INT64"
    assert all(o["shape"] == [2, 3] for o in outputs.values())
    from maskserve.params import FillMaskParams

    expected = await engine_for(bert_dir, model_name="bert").fill_mask(GUIDE_TEXTS, FillMaskParams(top_k=3))
    assert outputs["token"]["data"] == [p.token for r in expected for p in r[0]]
    assert outputs["sequence"]["data"] == [p.sequence for r in expected for p in r[0]]


async def test_v2_parameters_without_outputs_give_json_candidates(client: httpx.AsyncClient) -> None:
    payload = {**V2_GUIDE, "parameters": {"top_k": 2}}
    data = (await client.post("/v2/models/bert/infer", json=payload)).json()["outputs"][0]["data"]
    first = orjson.loads(data[0])
    assert len(first) == 2
    assert set(first[0]) == {"score", "token", "token_str", "sequence"}


@pytest.mark.parametrize("flag", ["return_probabilities", "return_logits"])
async def test_distribution_flags(bert_dir: Path, flag: str) -> None:
    async with client_for(bert_dir, model_name="bert", **{flag: True}) as c:
        v1 = (await c.post("/v1/models/bert:predict", json={"instances": GUIDE_TEXTS})).json()["predictions"]
        v2 = (await c.post("/v2/models/bert/infer", json=V2_GUIDE)).json()["outputs"][0]
    vocab = engine_for(bert_dir).info.vocab_size
    assert len(v1) == 2
    assert all(isinstance(p, dict) and len(p) == vocab for p in v1)
    assert all(isinstance(x, float) for x in v1[0].values())
    assert v2["shape"] == [2]
    assert v2["datatype"] == "BYTES"
    assert orjson.loads(v2["data"][0]) == pytest.approx(v1[0], abs=1e-6)
    if flag == "return_probabilities":
        assert sum(v1[0].values()) == pytest.approx(1.0, abs=1e-4)


async def test_hf_api_routes(client: httpx.AsyncClient, bert_dir: Path) -> None:
    body = {
        "inputs": "the [MASK] sat on the mat .",
        "parameters": {"top_k": 2, "targets": ["cat", "dog", "mat"]},
    }
    by_name = (await client.post("/models/bert", json=body)).json()
    by_root = (await client.post("/", json=body)).json()
    by_path = (await client.post(f"/models/{bert_dir}", json=body)).json()
    assert by_name == by_root == by_path
    assert len(by_name) == 2
    assert set(by_name[0]) == {"sequence", "score", "token", "token_str"}
    raw = await client.post(
        "/models/bert", content=b"the [MASK] sat .", headers={"content-type": "text/plain"}
    )
    assert raw.status_code == 200
    assert len(raw.json()) == 5
    many = (await client.post("/", json={"inputs": ["a [MASK] .", "[MASK] b [MASK] ."]})).json()
    assert isinstance(many[0][0], dict)
    assert isinstance(many[1][0], list)


async def test_hf_unknown_model(client: httpx.AsyncClient) -> None:
    r = await client.post("/models/org/other-model", json={"inputs": "a [MASK]"})
    assert r.status_code == 404
    assert "other-model" in r.json()["error"]


async def test_the_favicon_is_served(client: httpx.AsyncClient) -> None:
    answer = await client.get("/favicon.ico", follow_redirects=True)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.text.startswith("<svg")
