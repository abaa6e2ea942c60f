"""The word options over every transport: HF API, V1, V2 REST and gRPC parameters, with the same answers
as the engine; each option checked for type, range and combination with a 400 that names it."""

from __future__ import annotations

import json
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
from maskserve.core.context import RequestContext
from maskserve.params import FillMaskParams
from maskserve.protocols.hf import render_input
from support.engines import engine_for

ONE = "the [MASK] sat on the mat ."
TWO = "the [MASK] sat on the [MASK] ."
MODES: list[tuple[str, dict[str, Any], FillMaskParams]] = [
    (
        ONE,
        {"targets": ["cat", "catmatdog"], "target_scoring": "word"},
        FillMaskParams(targets=("cat", "catmatdog"), target_scoring="word"),
    ),
    (
        ONE,
        {"whole_word": True, "max_subwords": 2, "top_k": 3},
        FillMaskParams(top_k=3, whole_word=True, max_subwords=2),
    ),
    (
        TWO,
        {"decoding": "joint", "num_beams": 4, "top_k": 2},
        FillMaskParams(top_k=2, decoding="joint", num_beams=4),
    ),
]
IDS = ["target_scoring", "whole_word", "joint"]


@pytest.fixture
async def client(bert_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine_for(bert_dir, model_name="bert"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def _expected(bert_dir: Path, text: str, params: FillMaskParams) -> list[Any]:
    (result,) = await engine_for(bert_dir, model_name="bert").fill_mask(
        [text], params, RequestContext(use_cache=False)
    )
    return render_input(result)


@pytest.mark.parametrize(("text", "raw", "params"), MODES, ids=IDS)
async def test_hf_v1_and_v2_answer_as_the_engine(
    client: httpx.AsyncClient, bert_dir: Path, text: str, raw: dict[str, Any], params: FillMaskParams
) -> None:
    expected = await _expected(bert_dir, text, params)
    hf = await client.post("/models/bert", json={"inputs": text, "parameters": raw})
    assert hf.status_code == 200, hf.text
    assert hf.json() == expected
    v1 = await client.post("/v1/models/bert:predict", json={"instances": [text], "parameters": raw})
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == [expected]
    tensor = {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [text]}
    v2 = await client.post("/v2/models/bert/infer", json={"inputs": [tensor], "parameters": raw})
    assert v2.status_code == 200, v2.text
    assert json.loads(v2.json()["outputs"][0]["data"][0]) == expected


async def test_answers_carry_every_piece_and_joint_hypotheses(client: httpx.AsyncClient) -> None:
    word = (await client.post("/models/bert", json={"inputs": ONE, "parameters": MODES[0][1]})).json()
    assert {tuple(c["tokens"]) for c in word} >= {(636,)}
    assert any(len(c["tokens"]) > 1 for c in word)
    joint = (await client.post("/models/bert", json={"inputs": TWO, "parameters": MODES[2][1]})).json()
    assert len(joint) == 2
    assert all(set(h) == {"score", "tokens", "token_strs", "sequence"} for h in joint)
    assert all(len(h["tokens"]) == 2 for h in joint)


@pytest.mark.parametrize(("text", "raw", "params"), MODES, ids=IDS)
async def test_grpc_parameters_select_the_word_options(
    bert_dir: Path, text: str, raw: dict[str, Any], params: FillMaskParams
) -> None:
    if "targets" in raw:  # gRPC parameters are scalars: one target, as a string
        raw = {**raw, "targets": raw["targets"][-1]}
        params = params.model_copy(update={"targets": (raw["targets"],)})
    expected = await _expected(bert_dir, text, params)
    server, port = await start_grpc_server(engine_for(bert_dir, model_name="bert"), host="127.0.0.1", port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            msg = pb.ModelInferRequest(model_name="bert")
            msg.inputs.add(name="input-0", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
                text.encode()
            )
            for key, value in raw.items():
                if isinstance(value, bool):
                    msg.parameters[key].bool_param = value
                elif isinstance(value, int):
                    msg.parameters[key].int64_param = value
                elif isinstance(value, str):
                    msg.parameters[key].string_param = value
            reply = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(msg, timeout=30)
    finally:
        await server.stop(None)
    assert json.loads(reply.outputs[0].contents.bytes_contents[0]) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"topk": 3}, "unknown parameter 'topk' in 'parameters'; the known ones are top_k, targets"),
        ({"decodng": "joint"}, "unknown parameter 'decodng'"),
        ({"decoding": "beam"}, "'parameters.decoding' must be one of 'independent', 'joint'"),
        ({"target_scoring": "words", "targets": ["cat"]}, "'parameters.target_scoring' must be one of"),
        ({"target_scoring": "word"}, "give 'targets' too"),
        ({"whole_word": "yes"}, "'parameters.whole_word' must be true or false"),
        ({"whole_word": True, "max_subwords": 9}, "'parameters.max_subwords' must be at most 8"),
        ({"whole_word": True, "max_subwords": 0}, "'parameters.max_subwords' must be at least 1"),
        ({"max_subwords": 2}, "applies to 'whole_word': true only"),
        ({"whole_word": True, "targets": ["cat"]}, "'parameters.whole_word' fills the mask with any word"),
        ({"decoding": "joint", "num_beams": 33}, "'parameters.num_beams' must be at most 32"),
        ({"decoding": "joint", "num_beams": 2.5}, "'parameters.num_beams' must be a positive integer"),
        ({"decoding": "joint", "top_k": 6, "num_beams": 3}, "is more than 'num_beams'"),
        ({"decoding": "joint", "targets": ["cat"]}, "it takes no targets"),
        ({"num_beams": 3}, "applies to 'decoding': 'joint' and 'whole_word' only"),
    ],
)
async def test_bad_word_options_are_400s_naming_the_parameter(
    client: httpx.AsyncClient, raw: dict[str, Any], message: str
) -> None:
    response = await client.post("/models/bert", json={"inputs": TWO, "parameters": raw})
    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_v1_and_v2_keep_accepting_keys_they_do_not_know(client: httpx.AsyncClient) -> None:
    v1 = await client.post("/v1/models/bert:predict", json={"instances": [ONE], "parameters": {"topk": 3}})
    assert v1.status_code == 200
    tensor = {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [ONE]}
    v2 = await client.post("/v2/models/bert/infer", json={"inputs": [tensor], "parameters": {"x-custom": 1}})
    assert v2.status_code == 200


async def test_topk_tensors_refuse_a_joint_decoding(client: httpx.AsyncClient) -> None:
    tensor = {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [TWO]}
    response = await client.post(
        "/v2/models/bert/infer",
        json={"inputs": [tensor], "parameters": {"decoding": "joint"}, "outputs": [{"name": "token_str"}]},
    )
    assert response.status_code == 400
    assert "ask for output-0" in response.json()["error"]


async def test_without_word_options_the_answer_is_unchanged(
    client: httpx.AsyncClient, bert_dir: Path
) -> None:
    plain = await client.post("/models/bert", json={"inputs": TWO, "parameters": {"top_k": 3}})
    expected = await _expected(bert_dir, TWO, FillMaskParams(top_k=3))
    assert plain.json() == expected
    assert all("tokens" not in c for per_mask in plain.json() for c in per_mask)
