"""``maskserve serve`` as a real process on loopback: the guide's requests, then SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.servers import free_ports, server_env, wait_ready

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(bert_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], int]]:
    port, grpc_port = free_ports(2)
    env = server_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maskserve",
            "serve",
            str(bert_dir),
            "--model_name=bert",
            "--host=127.0.0.1",
            f"--http_port={port}",
            f"--grpc_port={grpc_port}",
            "--enable_docs_url=true",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, base)
    yield base, proc, grpc_port
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_guide_requests_over_a_real_socket(server: tuple[str, subprocess.Popen[bytes], int]) -> None:
    base, _, _ = server
    texts = ["The capital of France is [MASK].", "The capital of [MASK] is paris."]
    v1 = httpx.post(f"{base}/v1/models/bert:predict", json={"instances": texts}, timeout=30)
    assert v1.status_code == 200
    predictions = v1.json()["predictions"]
    assert len(predictions) == 2
    assert all(isinstance(p, str) and p for p in predictions)
    v2 = httpx.post(
        f"{base}/v2/models/bert/infer",
        timeout=30,
        json={"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": texts}]},
    )
    assert v2.status_code == 200
    assert v2.json()["outputs"][0]["data"] == predictions
    hf = httpx.post(
        f"{base}/models/bert",
        timeout=30,
        json={"inputs": "The capital of France is [MASK].", "parameters": {"top_k": 3}},
    )
    assert hf.status_code == 200
    assert len(hf.json()) == 3
    assert hf.json()[0]["token_str"] == predictions[0]


def test_huggingface_hub_client_works_unchanged(
    server: tuple[str, subprocess.Popen[bytes], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import InferenceClient, constants

    # The suite runs with HF_HUB_OFFLINE=1 so nothing reaches the Hub; this client only talks to loopback.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    base, _, _ = server
    by_base = InferenceClient(base_url=base).fill_mask(
        "The [MASK] sat on the mat.", top_k=2, targets=["cat", "dog"]
    )
    assert sorted(o.token_str for o in by_base) == ["cat", "dog"]
    by_model = InferenceClient(model=f"{base}/models/bert").fill_mask("The [MASK] sat on the mat.")
    assert len(by_model) == 5
    assert by_model[0].sequence.startswith("the ")


async def test_grpc_serves_beside_http(server: tuple[str, subprocess.Popen[bytes], int]) -> None:
    import grpc

    from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
    from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc

    _, _, grpc_port = server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert (await stub.ServerReady(pb.ServerReadyRequest(), timeout=10)).ready
        request = pb.ModelInferRequest(model_name="bert")
        tensor = request.inputs.add(name="input-0", datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(b"The capital of France is [MASK].")
        reply = await stub.ModelInfer(request, timeout=30)
    assert reply.outputs[0].name == "output-0"
    assert len(reply.outputs[0].contents.bytes_contents) == 1


def test_the_default_server_runs_onnx_runtime(server: tuple[str, subprocess.Popen[bytes], int]) -> None:
    # No --backend flag: auto picks ONNX Runtime on the CPU (docs/batching.md), exported once and cached.
    base, _, _ = server
    meta = httpx.get(f"{base}/v2/models/bert", timeout=30).json()
    assert meta["platform"] == "onnxruntime_onnx"


def test_sigterm_stops_cleanly(server: tuple[str, subprocess.Popen[bytes], int]) -> None:
    _, proc, _ = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "Traceback" not in output
    assert "--enable_docs_url is a KServe flag" in output
    # The links, once, after the model loaded (the line that says so comes first).
    assert output.count("/playground") == 1
    assert output.index("loaded in") < output.index("/playground")
