"""Servers the benchmarks start: on a free loopback port, stopped with SIGTERM, never left running."""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HOST = "127.0.0.1"
_children: list[subprocess.Popen[bytes]] = []


def stop_children_on_exit() -> None:
    """Stop every server this process started when it exits, is terminated or is interrupted."""
    atexit.register(lambda: stop(list(_children), grace=10))
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook (Linux) so a server gets SIGTERM even if this process is SIGKILLed."""
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, in the parent: the hook runs between fork and exec and should do nothing but the call.
    prctl, pr_set_pdeathsig, sigterm = ctypes.CDLL(None, use_errno=True).prctl, 1, int(signal.SIGTERM)
    return lambda: prctl(pr_set_pdeathsig, sigterm)


def stop(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM (the server drains and exits), then SIGKILL whatever is left after ``grace`` seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _on_signal(signum: int, _frame: object) -> None:
    # Raising here would surface inside loadgen's event loop (wrapped in exception groups); stop the
    # servers directly and leave at once instead.
    stop(list(_children), grace=10)
    os._exit(128 + signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(cmd: list[str], log_path: Path, src: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` with ``src`` first on its PYTHONPATH (this checkout, not an installed maskserve)."""
    env = dict(os.environ)
    if src.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches only this script, which then stops the server itself
            preexec_fn=_die_with_parent(),  # noqa: PLW1509
        )
    _children.append(proc)
    try:
        yield proc
    finally:
        stop([proc], grace=30)
        _children.remove(proc)


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float, poll: float = 0.5) -> None:
    """Until ``/v2/health/ready`` answers 200; ``poll``: seconds between probes (a cold-start timing wants
    them short)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(poll)
    raise RuntimeError(f"the server was not ready after {timeout:.0f}s")
