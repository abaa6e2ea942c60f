"""gRPC with API keys (metadata ``authorization``) and while the model loads (health NOT_SERVING)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from maskserve.api.grpc import SERVICE_NAME, start_grpc_server
from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from maskserve.core.slot import ModelSlot
from support.engines import engine_for
from support.waiting import HANG_S

DEADLINE = 30.0
KEY = "grpc-key-7"


def _infer_request() -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(b"a [MASK] .")
    return pb.ModelInferRequest(model_name="bert", inputs=[tensor])


async def test_keys_on_grpc(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, model_name="bert")
    server, port = await start_grpc_server(engine, host="127.0.0.1", port=0, api_keys=frozenset({KEY}))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for metadata in (None, (("authorization", "Bearer wrong"),)):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.ModelInfer(_infer_request(), metadata=metadata, timeout=DEADLINE)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "API key" in (info.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as meta:
                await stub.ModelMetadata(pb.ModelMetadataRequest(name="bert"), timeout=DEADLINE)
            assert meta.value.code() == grpc.StatusCode.UNAUTHENTICATED
            answer = await stub.ModelInfer(
                _infer_request(), metadata=(("authorization", f"Bearer {KEY}"),), timeout=DEADLINE
            )
            assert answer.outputs
            # Probes stay open.
            assert (await stub.ServerReady(pb.ServerReadyRequest(), timeout=DEADLINE)).ready
            health = health_pb2_grpc.HealthStub(channel)
            status = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)


async def test_grpc_follows_the_loading_state(bert_dir: Path) -> None:
    slot = ModelSlot("bert")
    server, port = await start_grpc_server(slot, host="127.0.0.1", port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)

            async def health_becomes(want: int) -> None:
                # The health service is updated by a task on the loop, soon after the state changes.
                deadline = time.monotonic() + HANG_S
                while True:
                    try:
                        reply = await health.Check(
                            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=DEADLINE
                        )
                        status: int | None = int(reply.status)
                    except grpc.aio.AioRpcError as exc:  # NOT_FOUND until the first update
                        if exc.code() != grpc.StatusCode.NOT_FOUND:
                            raise
                        status = None
                    if status == want:
                        return
                    assert time.monotonic() < deadline, f"health says {status}, not {want}"
                    await asyncio.sleep(0.01)

            await health_becomes(health_pb2.HealthCheckResponse.NOT_SERVING)
            assert (await stub.ServerLive(pb.ServerLiveRequest(), timeout=DEADLINE)).live
            assert not (await stub.ServerReady(pb.ServerReadyRequest(), timeout=DEADLINE)).ready
            assert not (await stub.ModelReady(pb.ModelReadyRequest(name="bert"), timeout=DEADLINE)).ready
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ModelInfer(_infer_request(), timeout=DEADLINE)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            slot.set_ready(engine_for(bert_dir, model_name="bert"))
            await health_becomes(health_pb2.HealthCheckResponse.SERVING)
            assert (await stub.ServerReady(pb.ServerReadyRequest(), timeout=DEADLINE)).ready
            assert (await stub.ModelInfer(_infer_request(), timeout=DEADLINE)).outputs
            slot.set_stopping()
            await health_becomes(health_pb2.HealthCheckResponse.NOT_SERVING)
    finally:
        await server.stop(None)
