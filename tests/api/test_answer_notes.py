"""What a client sees besides the answer: warnings for targets that were not taken as written (HTTP
``Warning`` headers, V2 response parameters, gRPC parameters), and answers over a size limit refused with
the flag that sets it, over HTTP and gRPC."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from maskserve.api.grpc import start_grpc_server
from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from maskserve.api.http.app import create_app
from maskserve.core import answer_size
from support.engines import engine_for, settings_for

TEXT = "the [MASK] sat on the mat ."
UNKNOWN = "Zzxqwv"  # not in the tiny WordPiece vocabulary: its first piece is "z"


def _client(path: Path, **settings: object) -> httpx.AsyncClient:
    app = create_app(engine_for(path, model_name="bert", **settings), settings_for(path, **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def client(bert_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(bert_dir) as c:
        yield c


def _v2_body(params: dict[str, object]) -> dict[str, object]:
    tensor = {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [TEXT]}
    return {"inputs": [tensor], "parameters": params}


async def test_hf_answer_carries_a_warning_header_per_replaced_target(client: httpx.AsyncClient) -> None:
    body = {"inputs": TEXT, "parameters": {"targets": [UNKNOWN, "cat", " "]}}
    response = await client.post("/models/bert", json=body)
    assert response.status_code == 200, response.text
    warnings = response.headers.get_list("warning")
    assert len(warnings) == 2
    replaced, ignored = warnings
    assert replaced.startswith('299 - "')
    assert replaced.endswith('"')
    assert UNKNOWN in replaced
    assert "first sub-token 'z'" in replaced
    assert "no token: ignored" in ignored
    tokens = {p["token_str"] for p in response.json()}
    assert tokens == {"z", "cat"}


async def test_targets_in_the_vocabulary_give_no_warning(client: httpx.AsyncClient) -> None:
    response = await client.post("/models/bert", json={"inputs": TEXT, "parameters": {"targets": ["cat"]}})
    assert response.status_code == 200
    assert "warning" not in response.headers


async def test_v1_and_v2_rest_carry_the_warning(client: httpx.AsyncClient) -> None:
    v1 = await client.post(
        "/v1/models/bert:predict", json={"instances": [TEXT], "parameters": {"targets": [UNKNOWN]}}
    )
    assert v1.status_code == 200
    assert UNKNOWN in v1.headers["warning"]
    v2 = await client.post("/v2/models/bert/infer", json=_v2_body({"targets": [UNKNOWN, "cat"]}))
    assert v2.status_code == 200
    assert UNKNOWN in v2.json()["parameters"]["warning"]
    assert UNKNOWN in v2.headers["warning"]
    plain = await client.post("/v2/models/bert/infer", json=_v2_body({"targets": ["cat"]}))
    assert plain.json()["parameters"] is None


async def test_unknown_v1_and_v2_parameters_are_accepted_with_a_warning_naming_them(
    client: httpx.AsyncClient,
) -> None:
    v1 = await client.post("/v1/models/bert:predict", json={"instances": [TEXT], "parameters": {"topk": 3}})
    assert v1.status_code == 200  # KServe clients send extension keys: accepted, as KServe does
    assert v1.json()["predictions"] == [
        (await client.post("/v1/models/bert:predict", json={"instances": [TEXT]})).json()["predictions"][0]
    ]
    (warning,) = v1.headers.get_list("warning")
    assert "parameter 'topk' in 'parameters' is not a fill-mask parameter and was ignored" in warning
    assert "top_k" in warning  # the known ones, so the fix is plain
    v2 = await client.post("/v2/models/bert/infer", json=_v2_body({"topk": 3, "binary_data_output": False}))
    assert v2.status_code == 200
    assert "'topk'" in v2.json()["parameters"]["warning"]
    assert "binary_data_output" not in v2.headers["warning"]  # the binary extension's own key is no mistake


async def test_a_replaced_target_is_logged_once_and_without_the_word(
    bert_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = "Qqxzvw"  # a target no other test sends, so its first sighting is in this test
    async with _client(bert_dir) as client:
        with caplog.at_level(logging.INFO, logger="maskserve"):
            for _ in range(3):
                response = await client.post(
                    "/models/bert", json={"inputs": TEXT, "parameters": {"targets": [target]}}
                )
                assert target in response.headers["warning"]
    lines = [r.getMessage() for r in caplog.records if "not in the vocabulary" in r.getMessage()]
    assert len(lines) == 1
    assert target not in caplog.text


async def test_grpc_answer_carries_the_warning_parameter(bert_dir: Path) -> None:
    server, port = await start_grpc_server(engine_for(bert_dir, model_name="bert"), host="127.0.0.1", port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            msg = pb.ModelInferRequest(model_name="bert")
            msg.inputs.add(name="input-0", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
                TEXT.encode()
            )
            msg.parameters["targets"].string_param = UNKNOWN
            reply = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(msg, timeout=30)
    finally:
        await server.stop(None)
    assert UNKNOWN in reply.parameters["warning"].string_param


async def test_http_answer_over_max_response_bytes_is_a_400_naming_the_flag(bert_dir: Path) -> None:
    async with _client(bert_dir, return_probabilities=True, max_response_bytes=4096) as client:
        too_big = await client.post("/v1/models/bert:predict", json={"instances": [TEXT] * 8})
        assert too_big.status_code == 400
        message = too_big.json()["error"]
        assert "--max_response_bytes" in message
        assert "4096 bytes" in message
        # The server goes on serving what fits.
        top5 = await client.post("/models/bert", json={"inputs": TEXT})
        assert top5.status_code == 200


async def test_grpc_answers_within_the_estimate_are_sent(bert_dir: Path) -> None:
    # The estimate bounds the real message: an answer sized just under the limit goes through.
    engine = engine_for(bert_dir, model_name="bert", return_probabilities=True)
    texts = [TEXT] * 3
    estimate = answer_size.distributions_bytes([1] * 3, engine.info.vocab_size, json_in_json=False)
    server, port = await start_grpc_server(engine, host="127.0.0.1", port=0, max_send_message_length=estimate)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            msg = pb.ModelInferRequest(model_name="bert")
            msg.inputs.add(name="input-0", datatype="BYTES", shape=[3]).contents.bytes_contents.extend(
                t.encode() for t in texts
            )
            reply = await pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(msg, timeout=30)
    finally:
        await server.stop(None)
    assert reply.ByteSize() <= estimate
    assert len(reply.outputs[0].contents.bytes_contents) == 3


async def test_grpc_answer_over_the_send_limit_is_resource_exhausted_naming_the_flag(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, model_name="bert", return_probabilities=True)
    server, port = await start_grpc_server(engine, host="127.0.0.1", port=0, max_send_message_length=4096)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            msg = pb.ModelInferRequest(model_name="bert")
            msg.inputs.add(name="input-0", datatype="BYTES", shape=[8]).contents.bytes_contents.extend(
                [TEXT.encode()] * 8
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.ModelInfer(msg, timeout=30)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--grpc_max_send_message_length" in (raised.value.details() or "")
            assert (await stub.ServerLive(pb.ServerLiveRequest(), timeout=30)).live
    finally:
        await server.stop(None)
