"""One ``maskserve serve`` process on loopback, and what the reliability tests read from it: its log, its
``/metrics``, its resident memory, and the answer to a known-good request over each protocol."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from support.servers import free_ports, read_metrics, server_env

MODEL = "bert"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
# Every call carries a deadline, so a hung server fails a test instead of stalling the run.
DEADLINE_S = 30.0
# grpc reads the proxy variables as well; loopback traffic must never go through a proxy.
GRPC_OPTIONS = [("grpc.enable_http_proxy", 0)]
GOOD_TEXT = "The capital of France is [MASK]."

# What a server error looks like in the log: the text formatter writes "<time> ERROR <logger>", and a
# traceback starts with this line whatever the formatter.
_PROBLEM = re.compile(r"\bERROR\b|\bCRITICAL\b|Traceback \(most recent call last\)")


@dataclass
class LiveServer:
    proc: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client for this server that ignores proxy settings (loopback only)."""
        return httpx.Client(**{"base_url": self.base, "trust_env": False, "timeout": DEADLINE_S, **kwargs})

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.grpc_target, options=GRPC_OPTIONS)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_problems(self, since: int = 0) -> list[str]:
        """ERROR / CRITICAL lines and tracebacks the server wrote after byte ``since`` of its log."""
        return [line for line in self.log()[since:].splitlines() if _PROBLEM.search(line)]

    def log_size(self) -> int:
        return len(self.log())

    def rss_kib(self) -> int:
        """Resident memory of the server process (VmRSS), KiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="ascii")
        match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
        assert match is not None, status
        return int(match.group(1))

    def metrics(self) -> dict[str, float]:
        """Every sample of ``/metrics`` by its name and labels (``name`` or ``name{label="v"}``)."""
        return read_metrics(self.base, timeout=DEADLINE_S)

    def stop(self) -> int:
        """SIGTERM (the server drains and exits 0), then SIGKILL if it does not; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        return self.proc.returncode


def start_server(model_dir: Path, log_path: Path, *flags: str) -> LiveServer:
    """Start ``maskserve serve`` on free loopback ports and wait until it is ready.

    Output goes to a file, not a pipe: nobody reads a pipe while the tests run, and a chatty server would
    block once the pipe's buffer is full.
    """
    http_port, grpc_port = free_ports(2)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maskserve", "serve", str(model_dir), f"--model_name={MODEL}",
             "--host=127.0.0.1", f"--http_port={http_port}", f"--grpc_port={grpc_port}", *flags],
            env=server_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = LiveServer(proc, http_port, grpc_port, log_path)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with server.client(timeout=2) as client:
        while time.monotonic() < deadline:
            if not server.alive():
                pytest.fail(f"maskserve exited early with {server.proc.returncode}:\n{server.log()[-4000:]}")
            try:
                if client.get("/v2/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    pytest.fail(f"maskserve was not ready in {READY_TIMEOUT_S:.0f} s:\n{server.log()[-4000:]}")


# --- known-good requests, one per protocol, each returning the top-1 token string of its one mask ---

NO_CACHE = {"x-use-cache": "false"}


def good_hf(client: httpx.Client, text: str = GOOD_TEXT, *, path: str = f"/models/{MODEL}") -> str:
    response = client.post(path, json={"inputs": text}, headers=NO_CACHE)
    assert response.status_code == 200, response.text
    token: str = response.json()[0]["token_str"]
    return token


def good_v1(client: httpx.Client, text: str = GOOD_TEXT) -> str:
    response = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [text]}, headers=NO_CACHE)
    assert response.status_code == 200, response.text
    prediction: str = response.json()["predictions"][0]
    return prediction


def v2_body(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


def good_v2(client: httpx.Client, text: str = GOOD_TEXT) -> str:
    response = client.post(f"/v2/models/{MODEL}/infer", json=v2_body([text]), headers=NO_CACHE)
    assert response.status_code == 200, response.text
    value: str = response.json()["outputs"][0]["data"][0]
    return value


def grpc_request(texts: list[str]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="input-0", datatype="BYTES", shape=[len(texts)])
    tensor.contents.bytes_contents.extend(t.encode("utf-8") for t in texts)
    return request


def good_grpc(stub: pb_grpc.GRPCInferenceServiceStub, text: str = GOOD_TEXT) -> str:
    reply = stub.ModelInfer(grpc_request([text]), timeout=DEADLINE_S)
    assert [o.name for o in reply.outputs] == ["output-0"]
    value: bytes = reply.outputs[0].contents.bytes_contents[0]
    return value.decode("utf-8")
