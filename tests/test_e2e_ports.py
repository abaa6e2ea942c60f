"""A server whose port is taken stops with one line naming the flag to change, and exit status 3."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.servers import free_ports, server_env

pytestmark = pytest.mark.e2e


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port with a listener on it, as a second server on the same machine would meet."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _serve(model: Path, http_port: int, grpc_port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "maskserve",
            "serve",
            str(model),
            "--host=127.0.0.1",
            f"--http_port={http_port}",
            f"--grpc_port={grpc_port}",
        ],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_taken_grpc_port_names_the_flags(bert_dir: Path, taken_port: int) -> None:
    (http_port,) = free_ports(1)
    done = _serve(bert_dir, http_port, taken_port)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot serve gRPC on 127.0.0.1:{taken_port}" in done.stderr
    assert "--grpc_port" in done.stderr
    assert "--enable_grpc false" in done.stderr


def test_taken_http_port_names_the_flag(bert_dir: Path, taken_port: int) -> None:
    (grpc_port,) = free_ports(1)
    done = _serve(bert_dir, taken_port, grpc_port)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot serve HTTP on 127.0.0.1:{taken_port}" in done.stderr
    assert "--http_port" in done.stderr
