"""Sentence scores on every contract: the HF-style routes (a string answered with one object, a list with
a list), V1 and V2 REST with ``"task": "score"`` (V2's FP64 / INT64 tensors, in JSON and binary), gRPC, and
bad requests answered 400 with what is wrong."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from maskserve.api.grpc import start_grpc_server
from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from maskserve.api.http.app import create_app
from maskserve.core.scoring import SCORE
from maskserve.params import ScoreParams
from support.engines import engine_for, settings_for

TEXTS = ["The cat sat on the mat.", "A dog ran home."]


@pytest.fixture
async def client(bert_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine_for(bert_dir, model_name="bert"), settings_for(bert_dir))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def _expected(bert_dir: Path, params: ScoreParams) -> list[dict[str, Any]]:
    answers = await engine_for(bert_dir, model_name="bert").run(SCORE, TEXTS, params)
    return [a.as_dict() for a in answers]


async def test_hf_routes_answer_a_string_with_an_object_and_a_list_with_a_list(
    client: httpx.AsyncClient, bert_dir: Path
) -> None:
    params = ScoreParams(tokens=True, words=True)
    want = await _expected(bert_dir, params)
    body = {"inputs": TEXTS[0], "parameters": {"tokens": True, "words": True}}
    one = await client.post("/models/bert/score", json=body)
    assert one.status_code == 200, one.text
    assert one.json() == want[0]
    assert set(one.json()) == {"score", "num_tokens", "pseudo_perplexity", "tokens", "words"}
    both = await client.post("/score", json={"inputs": TEXTS})
    assert both.json() == [{k: a[k] for k in ("score", "num_tokens", "pseudo_perplexity")} for a in want]
    alone = await client.post("/score", json={"inputs": [TEXTS[0]]})
    assert isinstance(alone.json(), list)  # a list of one is still a list
    plain = await client.post("/score", content=TEXTS[0].encode(), headers={"content-type": "text/plain"})
    assert plain.json()["score"] == want[0]["score"]


async def test_v1_scores_with_the_task_parameter(client: httpx.AsyncClient, bert_dir: Path) -> None:
    want = await _expected(bert_dir, ScoreParams(metric="token"))
    body = {"instances": TEXTS, "parameters": {"task": "score", "metric": "token"}}
    answer = await client.post("/v1/models/bert:predict", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": want}


async def test_v2_answers_fp64_scores_and_int64_counts(client: httpx.AsyncClient, bert_dir: Path) -> None:
    want = await _expected(bert_dir, ScoreParams(words=True))
    tensor = {"name": "input-0", "shape": [2], "datatype": "BYTES", "data": TEXTS}
    answer = await client.post(
        "/v2/models/bert/infer", json={"inputs": [tensor], "parameters": {"task": "score", "words": True}}
    )
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert [(o["name"], o["datatype"], o["shape"]) for o in answer.json()["outputs"]] == [
        ("score", "FP64", [2]),
        ("num_tokens", "INT64", [2]),
        ("output-0", "BYTES", [2]),
    ]
    assert outputs["score"]["data"] == [a["score"] for a in want]
    assert outputs["num_tokens"]["data"] == [a["num_tokens"] for a in want]
    assert [json.loads(d) for d in outputs["output-0"]["data"]] == want
    plain = await client.post(
        "/v2/models/bert/infer", json={"inputs": [tensor], "parameters": {"task": "score"}}
    )
    assert [o["name"] for o in plain.json()["outputs"]] == [
        "score",
        "num_tokens",
    ]  # no per-token details asked


async def test_v2_binary_score_tensors(client: httpx.AsyncClient, bert_dir: Path) -> None:
    want = await _expected(bert_dir, ScoreParams())
    tensor = {"name": "input-0", "shape": [2], "datatype": "BYTES", "data": TEXTS}
    body = {"inputs": [tensor], "parameters": {"task": "score", "binary_data_output": True}}
    answer = await client.post("/v2/models/bert/infer", json=body)
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    header = json.loads(answer.content[:length])
    raw = answer.content[length:]
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sizes == [16, 16]
    assert list(struct.unpack("<2d", raw[:16])) == [a["score"] for a in want]
    assert list(struct.unpack("<2q", raw[16:])) == [a["num_tokens"] for a in want]


async def test_grpc_scores_with_scalar_parameters(bert_dir: Path) -> None:
    (want,) = await engine_for(bert_dir, model_name="bert").run(SCORE, TEXTS[:1], ScoreParams(span=(4, 7)))
    server, port = await start_grpc_server(engine_for(bert_dir, model_name="bert"), host="127.0.0.1", port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            request = pb.ModelInferRequest(model_name="bert")
            tensor = request.inputs.add(name="input-0", datatype="BYTES", shape=[1])
            tensor.contents.bytes_contents.append(TEXTS[0].encode())
            request.parameters["task"].string_param = "score"
            request.parameters["span"].string_param = "4,7"  # "cat"; gRPC parameters are scalars
            reply = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    finally:
        await server.stop(None)
    outputs = {o.name: o for o in reply.outputs}
    assert list(outputs["score"].contents.fp64_contents) == [want.score]
    assert list(outputs["num_tokens"].contents.int64_contents) == [want.num_tokens] == [1]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/score", {"inputs": ""}, "the input is empty"),
        ("/score", {"inputs": ["a b", "the [MASK] sat"]}, "input 1 holds the mask token [MASK]"),
        ("/score", {"inputs": "a b", "parameters": {"metric": "pll"}}, "'parameters.metric' must be one of"),
        ("/score", {"inputs": "a b", "parameters": {"span": [3, 1]}}, "0 <= start < end"),
        ("/score", {"inputs": "a b", "parameters": {"span": [0, 30]}}, "is outside the input, which has 3"),
        ("/score", {"inputs": "a b", "parameters": {"top_k": 3}}, "unknown parameter 'top_k'"),
        (
            "/score",
            {"inputs": "a b", "parameters": {"tokens": "yes"}},
            "'parameters.tokens' must be true or false",
        ),
        ("/score", {"inputs": 5}, "'inputs' must be a string or a list of strings"),
        (
            "/v1/models/bert:predict",
            {"instances": ["a"], "parameters": {"task": "sum"}},
            "'parameters.task' must",
        ),
    ],
)
async def test_bad_score_requests_are_400s(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], message: str
) -> None:
    answer = await client.post(path, json=body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert (await client.post("/score", json={"inputs": "a b"})).status_code == 200  # and it serves on
