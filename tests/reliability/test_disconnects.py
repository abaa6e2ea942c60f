"""Clients that go away mid-request, against one real server: raw sockets that send a large request and
close before the answer, gRPC calls cancelled in flight, and HTTP requests whose body never arrives in full.

Afterwards the server must be as it was: its in-flight gauge back at its idle value, its queue gauge at 0,
no ERROR line or traceback in its log, and good requests answered.
"""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest

from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from reliability.live import (
    DEADLINE_S,
    MODEL,
    LiveServer,
    good_grpc,
    good_hf,
    good_v1,
    grpc_request,
)

pytestmark = pytest.mark.e2e

SERVER_FLAGS = ("--max_request_bytes=1048576",)
INFLIGHT = "maskserve_inflight_requests"
QUEUE = "maskserve_queue_inputs"
PREDICT_499 = 'maskserve_requests_total{protocol="v1",route="/v1/models/{name}:predict",status="499"}'
SETTLE_S = 8.0
# Enough work that most of it is still queued when the clients leave (after the first batch of 32): 6
# requests of 128 distinct texts, under --max_queue (1024).
ABANDONED = 6
TEXTS_PER_REQUEST = 128
HELD_OPEN_S = 1.0
BATCHES = "maskserve_batch_size_count"


def _texts(tag: int) -> list[str]:
    return [f"request {tag} text {i} has a [MASK] and {'more words ' * 10}" for i in range(TEXTS_PER_REQUEST)]


def _http_request(path: str, body: bytes, *, length: int | None = None) -> bytes:
    declared = len(body) if length is None else length
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"x-use-cache: false\r\nContent-Length: {declared}\r\n"
    ).encode()
    return head + b"\r\n" + body


def _connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=DEADLINE_S)


def abandon_large_requests(server: LiveServer) -> None:
    """Send whole requests with many inputs over raw sockets, then close without reading the answers, as
    soon as the model has run one batch of them (so the rest is still queued)."""
    batches = server.metrics()[BATCHES]
    sockets = []
    for tag in range(ABANDONED):
        body = json.dumps({"instances": _texts(tag)}).encode()
        sock = _connect(server)
        sock.sendall(_http_request(f"/v1/models/{MODEL}:predict", body))
        sockets.append(sock)
    deadline = time.monotonic() + DEADLINE_S
    while server.metrics()[BATCHES] == batches and time.monotonic() < deadline:
        time.sleep(0.01)
    for sock in sockets:
        sock.close()


def cancel_grpc_calls(server: LiveServer) -> None:
    with server.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        calls = [
            stub.ModelInfer.future(grpc_request(_texts(100 + tag)), timeout=DEADLINE_S) for tag in range(3)
        ]
        time.sleep(0.05)
        for call in calls:
            call.cancel()
        for call in calls:
            # Cancelled on our side, or (if the server was fast) answered: either way, over.
            assert call.cancelled() or call.code() == grpc.StatusCode.OK


@dataclass
class Held:
    """Requests whose body is not complete, held open; ``inflight`` is the gauge while they are."""

    sockets: list[socket.socket]
    inflight: float = 0.0


def start_unfinished_bodies(server: LiveServer) -> Held:
    body = b'{"instances": ["a [MASK] that never ends' + b" and on" * 100
    starts = [
        # Content-Length promises more than ever comes.
        _http_request(f"/v1/models/{MODEL}:predict", body, length=50_000),
        _http_request(f"/models/{MODEL}", body, length=50_000),
        # A chunked body whose last chunk never comes.
        (f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         f"{len(body):x}\r\n").encode() + body + b"\r\n",
        # Headers that never end.
        f"POST /models/{MODEL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n".encode(),
    ]  # fmt: skip
    held = Held([])
    for data in starts:
        sock = _connect(server)
        sock.sendall(data)
        held.sockets.append(sock)
    return held


@dataclass(frozen=True)
class Aftermath:
    idle_inflight: float
    held_inflight: float
    settled: dict[str, float]
    settle_seconds: float
    disconnects_recorded: float
    log_offset: int


def wait_settled(server: LiveServer, idle_inflight: float) -> tuple[dict[str, float], float]:
    started = time.monotonic()
    while True:
        samples = server.metrics()
        if samples[INFLIGHT] == idle_inflight and samples[QUEUE] == 0:
            return samples, time.monotonic() - started
        if time.monotonic() - started > SETTLE_S:
            return samples, time.monotonic() - started
        time.sleep(0.25)


@pytest.fixture(scope="module")
def aftermath(server: LiveServer) -> Aftermath:
    with server.client() as client:
        good_v1(client)  # the model has run once: what follows is about disconnects, not warm-up
    log_offset = server.log_size()
    before = server.metrics()
    # The gauge counts the /metrics request reading it: that is its idle value.
    idle = before[INFLIGHT]
    held = start_unfinished_bodies(server)
    try:
        time.sleep(0.3)
        held.inflight = server.metrics()[INFLIGHT]
        with ThreadPoolExecutor(1) as pool:
            cancelled = pool.submit(cancel_grpc_calls, server)
            abandon_large_requests(server)
            cancelled.result(DEADLINE_S)
        time.sleep(HELD_OPEN_S)
    finally:
        for sock in held.sockets:
            sock.close()
    settled, seconds = wait_settled(server, idle)
    return Aftermath(
        idle_inflight=idle,
        held_inflight=held.inflight,
        settled=settled,
        settle_seconds=seconds,
        disconnects_recorded=settled.get(PREDICT_499, 0.0) - before.get(PREDICT_499, 0.0),
        log_offset=log_offset,
    )


def test_the_unfinished_requests_were_really_in_flight(aftermath: Aftermath) -> None:
    # Three of the four held connections had a complete head, so the application was waiting for their
    # bodies; without this the rest of the module would prove nothing.
    assert aftermath.held_inflight >= aftermath.idle_inflight + 3


def test_abandoned_requests_are_recorded_as_client_closed(aftermath: Aftermath) -> None:
    # The 499s show the server noticed the clients leave while their work was queued, rather than
    # computing every answer for nobody.
    assert aftermath.disconnects_recorded >= 1


def test_inflight_gauge_returns_to_idle(aftermath: Aftermath) -> None:
    assert aftermath.settled[INFLIGHT] == aftermath.idle_inflight, aftermath


def test_queue_gauge_returns_to_zero(aftermath: Aftermath) -> None:
    assert aftermath.settled[QUEUE] == 0, aftermath


def test_no_error_or_traceback_in_the_log(aftermath: Aftermath, server: LiveServer) -> None:
    assert server.log_problems(since=aftermath.log_offset) == []


def test_still_serving(aftermath: Aftermath, server: LiveServer) -> None:
    assert server.alive()
    with server.client() as client, server.channel() as channel:
        reference = good_hf(client)
        assert good_v1(client) == reference
        assert good_grpc(pb_grpc.GRPCInferenceServiceStub(channel)) == reference
