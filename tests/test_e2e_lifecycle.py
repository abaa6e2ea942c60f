"""The process's life on loopback: a failed load exits non-zero, SIGTERM drains in-flight requests, and the
access log is structured."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from support.servers import free_ports, read_metrics, server_env, wait_ready
from support.waiting import HANG_S, wait_until

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
    assert output.count("is not a masked language model") == 1, output  # the reason, once
    assert "/playground" not in output  # no links to a server that is about to stop


_INFLIGHT = "maskserve_inflight_requests"
_V1_PREDICT = 'route="/v1/models/{name}:predict"'


def _arrived(samples: dict[str, float], idle: dict[str, float]) -> float:
    """Predict requests that have reached the application since ``idle``: in flight or answered. Both change
    in one step when a request finishes, so a reading never counts one twice."""

    def answered(s: dict[str, float]) -> float:
        return sum(v for k, v in s.items() if k.startswith("maskserve_requests_total{") and _V1_PREDICT in k)

    # The /metrics request reading the gauge is in flight in both readings.
    return samples[_INFLIGHT] - idle[_INFLIGHT] + answered(samples) - answered(idle)


def test_sigterm_finishes_in_flight_requests_then_exits_0(bert_dir: Path) -> None:
    proc, base = _start(
        bert_dir,
        "--max_batch_size=4",
        "--threads=1",
        "--cache_size=0",
        "--grace_period=60",
        "--max_queue=4096",
    )
    held: socket.socket | None = None
    try:
        wait_ready(proc, base)
        idle = read_metrics(base)
        texts = [f"request {i} sentence with a [MASK] and " + "many more words " * 12 for i in range(256)]
        results: list[int] = []
        errors: list[str] = []

        def send() -> None:
            try:
                r = httpx.post(f"{base}/v1/models/bert:predict", json={"instances": texts}, timeout=120)
                results.append(r.status_code)
            except httpx.HTTPError as exc:
                errors.append(repr(exc))

        # One request is certainly still in flight when the signal comes, however fast the model is: its
        # body is only complete after the signal.
        body = json.dumps({"instances": ["the held request has a [MASK] ."]}).encode()
        held = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=HANG_S)
        held.sendall(
            b"POST /v1/models/bert:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        # Every request has been read (the held one up to its body) before the signal: a connection whose
        # request the server has not started on is closed by a stopping server, not drained.
        wait_until(
            lambda: _arrived(read_metrics(base), idle) >= len(threads) + 1, "every request reached the server"
        )
        proc.send_signal(signal.SIGTERM)
        held.sendall(body[10:])
        with held.makefile("rb") as answer:
            status_line = answer.readline()
        for t in threads:
            t.join(120)
        code = proc.wait(60)
    finally:
        if held is not None:
            held.close()
        if proc.poll() is None:
            proc.kill()
    assert errors == []
    assert results == [200] * 8
    assert status_line.startswith(b"HTTP/1.1 200 "), status_line
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
