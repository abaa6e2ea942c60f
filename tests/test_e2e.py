"""``maskserve serve`` as a real process on loopback: the guide's requests, then SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e
SRC = Path(__file__).resolve().parents[1] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(bert_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "HF_HUB_OFFLINE": "1",
    }
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
            "--enable_docs_url=true",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.25)
    else:
        proc.kill()
        pytest.fail("server did not become ready in 90 s")
    yield base, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_guide_requests_over_a_real_socket(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    base, _ = server
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
    server: tuple[str, subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import InferenceClient, constants

    # The suite runs with HF_HUB_OFFLINE=1 so nothing reaches the Hub; this client only talks to loopback.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    base, _ = server
    by_base = InferenceClient(base_url=base).fill_mask(
        "The [MASK] sat on the mat.", top_k=2, targets=["cat", "dog"]
    )
    assert sorted(o.token_str for o in by_base) == ["cat", "dog"]
    by_model = InferenceClient(model=f"{base}/models/bert").fill_mask("The [MASK] sat on the mat.")
    assert len(by_model) == 5
    assert by_model[0].sequence.startswith("the ")


def test_sigterm_stops_cleanly(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    _, proc = server
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "Traceback" not in output
    assert "--enable_docs_url is a KServe flag" in output
