"""Starting ``maskserve serve`` as a real process on loopback, for the tests that need a socket."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
# A sample line of /metrics: the name, its labels (label values may hold braces:
# route="/v1/models/{name}:predict"), and the value.
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*(?:\{.*\})?) (\S+)$")


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: the sockets stay open until all are chosen."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def loopback_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: loopback never goes through a proxy."""
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    return {**os.environ, "NO_PROXY": no_proxy, "no_proxy": no_proxy, **extra}


def server_env(**extra: str) -> dict[str, str]:
    """A child maskserve imports this checkout and never reaches the Hub."""
    path = f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    return loopback_env(PYTHONPATH=path, HF_HUB_OFFLINE="1", **extra)


def wait_ready(
    proc: subprocess.Popen[bytes],
    base: str,
    *,
    timeout: float = 90.0,
    output: Callable[[], str] | None = None,
    also: Callable[[], bool] = lambda: True,
) -> None:
    """Poll ``/v2/health/ready`` (and ``also``) until both say yes; fail with the server's output if the
    process exits first or the time runs out (then it is killed)."""

    def said() -> str:
        if output is not None:
            return output()
        return proc.stdout.read().decode(errors="replace") if proc.stdout else ""

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"maskserve exited early ({proc.returncode}):\n{said()}")
        try:
            ready = httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            ready = False
        if ready and also():
            return
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"maskserve not ready in {timeout:.0f} s:\n{said()}")
        time.sleep(0.2)


def read_metrics(base: str, *, timeout: float = 30.0) -> dict[str, float]:
    """Every sample of ``/metrics`` by its name and labels (``name`` or ``name{label="v"}``)."""
    response = httpx.get(f"{base}/metrics", timeout=timeout, trust_env=False)
    assert response.status_code == 200, response.text
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        match = _SAMPLE.match(line)
        if match is not None and not line.startswith("#"):
            samples[match.group(1)] = float(match.group(2))
    return samples
