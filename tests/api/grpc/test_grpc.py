"""The Open Inference Protocol over gRPC, through a real grpc.aio channel on loopback (ephemeral ports).

Every RPC carries a deadline, so a hung server fails a test instead of stalling the run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import struct
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from maskserve import __version__
from maskserve.api.grpc import SERVICE_NAME, start_grpc_server
from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from maskserve.core.dataplane import DataPlane
from maskserve.core.engine import Engine
from maskserve.errors import (
    InferenceFailed,
    MaskserveError,
    ModelNotReady,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
)
from maskserve.params import FillMaskParams
from maskserve.protocols import v2
from support.engines import engine_for

GUIDE_TEXTS = ["The capital of France is [MASK].", "The capital of [MASK] is paris."]
TOPK_NAMES = ["token_str", "score", "token", "sequence"]
DEADLINE = 30.0


@dataclass
class Served:
    engine: Engine
    server: grpc.aio.Server
    port: int
    channel: grpc.aio.Channel
    stub: pb_grpc.GRPCInferenceServiceStub


@pytest_asyncio.fixture(loop_scope="function")
async def served(bert_dir: Path) -> AsyncIterator[Served]:
    engine = engine_for(bert_dir, model_name="bert")
    server, port = await start_grpc_server(engine, host="127.0.0.1", port=0)
    assert port > 0
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(engine, server, port, channel, pb_grpc.GRPCInferenceServiceStub(channel))
    finally:
        await channel.close()
        await server.stop(None)


def split_raw_bytes(raw: bytes) -> list[str]:
    """The client's side of a raw BYTES tensor: 4-byte little-endian length, then the UTF-8 text."""
    out: list[str] = []
    offset = 0
    while offset < len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        out.append(raw[offset + 4 : offset + 4 + n].decode("utf-8"))
        offset += 4 + n
    assert offset == len(raw)
    return out


def join_raw_bytes(texts: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)


def text_request(texts: list[str], *, raw: bool = False, model: str = "bert") -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name=model)
    tensor = msg.inputs.add(name="input-0", datatype="BYTES", shape=[len(texts)])
    if raw:
        msg.raw_input_contents.append(join_raw_bytes(texts))
    else:
        tensor.contents.bytes_contents.extend(t.encode() for t in texts)
    return msg


async def expect_code(call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value


async def assert_still_serves(s: Served) -> None:
    assert (await s.stub.ServerLive(pb.ServerLiveRequest(), timeout=DEADLINE)).live
    reply = await s.stub.ModelInfer(text_request(GUIDE_TEXTS[:1]), timeout=DEADLINE)
    assert reply.outputs[0].shape == [1]


# --- health and metadata ---


async def test_server_live_and_ready(served: Served) -> None:
    assert (await served.stub.ServerLive(pb.ServerLiveRequest(), timeout=DEADLINE)).live is True
    assert (await served.stub.ServerReady(pb.ServerReadyRequest(), timeout=DEADLINE)).ready is True


async def test_model_ready(served: Served) -> None:
    reply = await served.stub.ModelReady(pb.ModelReadyRequest(name="bert"), timeout=DEADLINE)
    assert reply.ready is True
    err = await expect_code(
        served.stub.ModelReady(pb.ModelReadyRequest(name="other"), timeout=DEADLINE),
        grpc.StatusCode.NOT_FOUND,
    )
    assert err.details() == "Model with name other does not exist. Models served here: bert."


async def test_server_metadata(served: Served) -> None:
    reply = await served.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=DEADLINE)
    assert (reply.name, reply.version, list(reply.extensions)) == ("maskserve", __version__, [])


async def test_model_metadata(served: Served) -> None:
    reply = await served.stub.ModelMetadata(pb.ModelMetadataRequest(name="bert"), timeout=DEADLINE)
    expected = v2.model_metadata(served.engine.info)
    assert reply.name == "bert"
    assert reply.platform == expected.platform == "pytorch_transformers"
    assert list(reply.versions) == []
    assert [(t.name, t.datatype, list(t.shape)) for t in reply.inputs] == [("input-0", "BYTES", [-1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in reply.outputs] == [
        (t.name, t.datatype, t.shape) for t in expected.outputs
    ]
    await expect_code(
        served.stub.ModelMetadata(pb.ModelMetadataRequest(name="other"), timeout=DEADLINE),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_versions_are_not_found(served: Served) -> None:
    msg = text_request(GUIDE_TEXTS)
    msg.model_version = "2"
    err = await expect_code(served.stub.ModelInfer(msg, timeout=DEADLINE), grpc.StatusCode.NOT_FOUND)
    assert "has no version 2" in (err.details() or "")


async def test_health_service(served: Served) -> None:
    health = health_pb2_grpc.HealthStub(served.channel)
    for service in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=DEADLINE)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    await expect_code(
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=DEADLINE),
        grpc.StatusCode.NOT_FOUND,
    )


# --- inference ---


async def test_infer_bytes_contents_matches_the_engine(served: Served) -> None:
    msg = text_request(GUIDE_TEXTS)
    msg.id = "guide-1"
    reply = await served.stub.ModelInfer(msg, timeout=DEADLINE)
    expected = [str(v) for v in await served.engine.kserve_values(GUIDE_TEXTS)]
    assert (reply.model_name, reply.model_version, reply.id) == ("bert", "", "guide-1")
    assert len(reply.outputs) == 1
    out = reply.outputs[0]
    assert (out.name, out.datatype, list(out.shape)) == ("output-0", "BYTES", [2])
    assert [b.decode() for b in out.contents.bytes_contents] == expected
    assert list(reply.raw_output_contents) == []


async def test_infer_raw_in_raw_out(served: Served) -> None:
    reply = await served.stub.ModelInfer(text_request(GUIDE_TEXTS, raw=True), timeout=DEADLINE)
    expected = [str(v) for v in await served.engine.kserve_values(GUIDE_TEXTS)]
    assert len(reply.id) == 36  # a fresh UUID when the request gave none, as over REST
    out = reply.outputs[0]
    assert (out.name, out.datatype, list(out.shape)) == ("output-0", "BYTES", [2])
    assert not out.HasField("contents")
    assert len(reply.raw_output_contents) == 1
    assert split_raw_bytes(reply.raw_output_contents[0]) == expected


def topk_request(*, raw: bool) -> pb.ModelInferRequest:
    msg = text_request(GUIDE_TEXTS, raw=raw)
    msg.parameters["top_k"].int64_param = 3
    for name in TOPK_NAMES:
        msg.outputs.add(name=name)
    return msg


async def test_topk_outputs_match_fill_mask(served: Served) -> None:
    reply = await served.stub.ModelInfer(topk_request(raw=False), timeout=DEADLINE)
    results = await served.engine.fill_mask(GUIDE_TEXTS, FillMaskParams(top_k=3))
    flat = [p for r in results for candidates in r for p in candidates]
    outs = {o.name: o for o in reply.outputs}
    assert [o.name for o in reply.outputs] == TOPK_NAMES
    assert {o.name: (o.datatype, list(o.shape)) for o in reply.outputs} == {
        "token_str": ("BYTES", [2, 3]),
        "score": ("FP32", [2, 3]),
        "token": ("INT64", [2, 3]),
        "sequence": ("BYTES", [2, 3]),
    }
    assert [b.decode() for b in outs["token_str"].contents.bytes_contents] == [p.token_str for p in flat]
    assert [b.decode() for b in outs["sequence"].contents.bytes_contents] == [p.sequence for p in flat]
    assert list(outs["token"].contents.int64_contents) == [p.token for p in flat]
    np.testing.assert_allclose(
        list(outs["score"].contents.fp32_contents), [p.score for p in flat], rtol=1e-6, atol=1e-7
    )


async def test_topk_outputs_raw(served: Served) -> None:
    reply = await served.stub.ModelInfer(topk_request(raw=True), timeout=DEADLINE)
    results = await served.engine.fill_mask(GUIDE_TEXTS, FillMaskParams(top_k=3))
    flat = [p for r in results for candidates in r for p in candidates]
    assert [o.name for o in reply.outputs] == TOPK_NAMES
    assert not any(o.HasField("contents") for o in reply.outputs)
    token_str, score, token, sequence = reply.raw_output_contents
    assert split_raw_bytes(token_str) == [p.token_str for p in flat]
    assert split_raw_bytes(sequence) == [p.sequence for p in flat]
    assert np.frombuffer(token, dtype="<i8").tolist() == [p.token for p in flat]
    np.testing.assert_allclose(np.frombuffer(score, dtype="<f4"), [p.score for p in flat], rtol=1e-6)


# --- errors ---


async def test_unknown_model_is_not_found(served: Served) -> None:
    err = await expect_code(
        served.stub.ModelInfer(text_request(GUIDE_TEXTS, model="other"), timeout=DEADLINE),
        grpc.StatusCode.NOT_FOUND,
    )
    assert err.details() == "Model with name other does not exist. Models served here: bert."
    await assert_still_serves(served)


async def test_no_mask_is_invalid_argument_with_the_pipeline_message(served: Served) -> None:
    err = await expect_code(
        served.stub.ModelInfer(text_request(["there is no mask here"]), timeout=DEADLINE),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert err.details() == "No mask_token ([MASK]) found on the input"
    await assert_still_serves(served)


async def test_fp32_input_is_invalid_argument(served: Served) -> None:
    msg = pb.ModelInferRequest(model_name="bert")
    msg.inputs.add(name="input-0", datatype="FP32", shape=[2]).contents.fp32_contents.extend([1.0, 2.0])
    err = await expect_code(served.stub.ModelInfer(msg, timeout=DEADLINE), grpc.StatusCode.INVALID_ARGUMENT)
    assert err.details() == "input 'input-0' has datatype FP32; texts must be sent as BYTES"
    await assert_still_serves(served)


async def test_bad_raw_length_prefix_is_invalid_argument(served: Served) -> None:
    msg = pb.ModelInferRequest(model_name="bert")
    msg.inputs.add(name="input-0", datatype="BYTES", shape=[1])
    msg.raw_input_contents.append(struct.pack("<I", 1000) + b"a [MASK] .")
    err = await expect_code(served.stub.ModelInfer(msg, timeout=DEADLINE), grpc.StatusCode.INVALID_ARGUMENT)
    assert "length prefix 1000" in (err.details() or "")
    await assert_still_serves(served)


async def test_shape_mismatch_is_invalid_argument(served: Served) -> None:
    msg = text_request(GUIDE_TEXTS)
    msg.inputs[0].shape[:] = [3]
    await expect_code(served.stub.ModelInfer(msg, timeout=DEADLINE), grpc.StatusCode.INVALID_ARGUMENT)
    await assert_still_serves(served)


async def test_message_over_the_receive_limit_is_rejected_by_grpc(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, model_name="bert")
    server, port = await start_grpc_server(engine, host="127.0.0.1", port=0, max_receive_message_length=1024)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            big = text_request(["a [MASK] . " + "x" * 2000])
            err = await expect_code(
                stub.ModelInfer(big, timeout=DEADLINE), grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            assert "larger than max" in (err.details() or "")
            small = await stub.ModelInfer(text_request(["a [MASK] ."]), timeout=DEADLINE)
            assert small.outputs[0].shape == [1]
    finally:
        await server.stop(None)


async def test_port_in_use_fails_loudly(served: Served) -> None:
    with pytest.raises(RuntimeError):
        await start_grpc_server(served.engine, host="127.0.0.1", port=served.port)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Unauthorized("who are you"), grpc.StatusCode.UNAUTHENTICATED),
        (PayloadTooLarge("too big"), grpc.StatusCode.INVALID_ARGUMENT),
        (Overloaded("busy", retry_after=2), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (ModelNotReady("loading"), grpc.StatusCode.UNAVAILABLE),
        (RequestTimeout("too slow"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (InferenceFailed("the model broke"), grpc.StatusCode.INTERNAL),
    ],
)
async def test_error_table_over_the_wire(
    served: Served, monkeypatch: pytest.MonkeyPatch, error: MaskserveError, code: grpc.StatusCode
) -> None:
    async def failing(*_: object) -> v2.InferenceResponse:
        raise error

    monkeypatch.setattr(DataPlane, "v2_infer", failing)
    call = served.stub.ModelInfer(text_request(GUIDE_TEXTS), timeout=DEADLINE)
    err = await expect_code(call, code)
    assert err.details() == error.message
    trailers = dict(err.trailing_metadata() or ())
    if "Retry-After" in error.headers:
        assert trailers["retry-after"] == error.headers["Retry-After"]
    monkeypatch.undo()
    await assert_still_serves(served)


async def test_unexpected_error_is_internal_without_leaking(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(*_: object) -> v2.InferenceResponse:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(DataPlane, "v2_infer", failing)
    err = await expect_code(
        served.stub.ModelInfer(text_request(GUIDE_TEXTS), timeout=DEADLINE), grpc.StatusCode.INTERNAL
    )
    assert "secret" not in (err.details() or "")
    assert "RuntimeError" in (err.details() or "")


async def test_concurrent_requests_share_the_loop(served: Served) -> None:
    calls = [served.stub.ModelInfer(text_request([t]), timeout=DEADLINE) for t in GUIDE_TEXTS * 4]
    replies = await asyncio.gather(*calls)
    expected = [str(v) for v in await served.engine.kserve_values(GUIDE_TEXTS * 4)]
    assert [r.outputs[0].contents.bytes_contents[0].decode() for r in replies] == expected


# --- real clients, each in its own process (their generated code registers the same "inference" package
# in protobuf's default descriptor pool, so they cannot share a process with maskserve's stubs) ---

_TRITON_CLIENT = """
    import json, sys
    import numpy as np
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(url=sys.argv[1])
    meta = client.get_model_metadata("bert")
    inp = triton.InferInput("input-0", [2], "BYTES")
    inp.set_data_from_numpy(np.array(json.loads(sys.argv[2]), dtype=object))
    result = client.infer("bert", [inp], client_timeout=30)
    topk = triton.InferInput("input-0", [2], "BYTES")
    topk.set_data_from_numpy(np.array(json.loads(sys.argv[2]), dtype=object))
    outputs = [triton.InferRequestedOutput(n) for n in ("token_str", "token")]
    ranked = client.infer("bert", [topk], outputs=outputs, parameters={"top_k": 3}, client_timeout=30)
    print(json.dumps({
        "live": client.is_server_live(),
        "ready": client.is_model_ready("bert"),
        "inputs": [i.name for i in meta.inputs],
        "top1": [b.decode() for b in result.as_numpy("output-0")],
        "token_str": [b.decode() for b in ranked.as_numpy("token_str").reshape(-1)],
        "token": ranked.as_numpy("token").reshape(-1).tolist(),
    }))
"""

_KSERVE_CLIENT = """
    import asyncio, json, sys
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def main():
        client = InferenceGRPCClient(url=sys.argv[1], timeout=30)
        texts = json.loads(sys.argv[2])
        request = InferRequest(
            model_name="bert",
            infer_inputs=[InferInput(name="input-0", shape=[2], datatype="BYTES", data=texts)],
        )
        response = await client.infer(request)
        ready = await client.is_model_ready("bert")
        await client.close()
        data = response.outputs[0].data
        print(json.dumps({"ready": ready, "top1": [d.decode() if isinstance(d, bytes) else d for d in data]}))

    asyncio.run(main())
"""


async def _run_client(script: str, port: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(script),
        f"127.0.0.1:{port}",
        json.dumps(GUIDE_TEXTS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()[-3000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _needs(module: str) -> Callable[[Any], Any]:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return pytest.mark.skipif(not found, reason=f"{module} is not installed")


@_needs("tritonclient.grpc")
async def test_tritonclient_interoperates(served: Served) -> None:
    result = await _run_client(_TRITON_CLIENT, served.port)
    expected = [str(v) for v in await served.engine.kserve_values(GUIDE_TEXTS)]
    ranked = await served.engine.fill_mask(GUIDE_TEXTS, FillMaskParams(top_k=3))
    flat = [p for r in ranked for candidates in r for p in candidates]
    assert result["live"] is True
    assert result["ready"] is True
    assert result["inputs"] == ["input-0"]
    assert result["top1"] == expected
    assert result["token_str"] == [p.token_str for p in flat]
    assert result["token"] == [p.token for p in flat]


@_needs("kserve")
async def test_kserve_sdk_interoperates(served: Served) -> None:
    result = await _run_client(_KSERVE_CLIENT, served.port)
    expected = [str(v) for v in await served.engine.kserve_values(GUIDE_TEXTS)]
    assert result == {"ready": True, "top1": expected}
