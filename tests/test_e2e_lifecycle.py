"""The process's life on loopback: a failed load exits non-zero, SIGTERM drains in-flight requests, and the
access log is structured."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from support.servers import free_ports, server_env, wait_ready

pytestmark = pytest.mark.e2e


def _start(model: Path | str, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    port, grpc_port = free_ports(2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskserve", "serve", str(model), "--model_name=bert", "--host=127.0.0.1",
         f"--http_port={port}", f"--grpc_port={grpc_port}", *flags],
        env=server_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


def test_a_model_that_cannot_load_exits_non_zero_with_the_reason(not_mlm_dir: Path) -> None:
    proc, _ = _start(not_mlm_dir)
    try:
        code = proc.wait(90)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert code == 1, output
    assert "cannot serve the model" in output
    assert "not a masked language model" in output or "ForMaskedLM" in output


def test_sigterm_finishes_in_flight_requests_then_exits_0(bert_dir: Path) -> None:
    proc, base = _start(
        bert_dir,
        "--max_batch_size=4",
        "--threads=1",
        "--cache_size=0",
        "--grace_period=60",
        "--max_queue=4096",
    )
    try:
        wait_ready(proc, base)
        texts = [f"request {i} sentence with a [MASK] and " + "many more words " * 12 for i in range(256)]
        results: list[tuple[int, float]] = []
        errors: list[str] = []

        def send() -> None:
            try:
                r = httpx.post(f"{base}/v1/models/bert:predict", json={"instances": texts}, timeout=120)
                results.append((r.status_code, time.monotonic()))
            except httpx.HTTPError as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # every request is read and queued
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(120)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert errors == []
    assert [status for status, _ in results] == [200] * 8
    # The test means something only if work was still in flight when the signal came.
    assert any(done > signalled for _, done in results)
    assert code == 0


def test_json_access_log_with_request_id(bert_dir: Path) -> None:
    proc, base = _start(bert_dir, "--log_format=json", "--api_key=k-123")
    try:
        wait_ready(proc, base)
        secret_text = "secret patient text [MASK] ."
        response = httpx.post(
            f"{base}/models/bert",
            json={"inputs": secret_text},
            headers={"X-Request-Id": "req-42", "Authorization": "Bearer k-123"},
            timeout=30,
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "req-42"
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'request_predict_seconds_count{model_name="bert"}' in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode() if proc.stdout else ""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines, output
    access = [line for line in lines if line.get("request_id") == "req-42"]
    assert access, output
    assert "secret patient" not in output
    assert "k-123" not in output
