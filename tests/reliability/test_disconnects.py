"""Clients that go away mid-request, against one real server: raw sockets that send a large request and
close before the answer, gRPC calls cancelled in flight, and HTTP requests whose body never arrives in full.

Afterwards the server must be as it was: its in-flight gauge back at its idle value, its queue gauge at 0,
no ERROR line or traceback in its log, and good requests answered.
"""

from __future__ import annotations

import json
import socket
import time
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
from support.waiting import HANG_S, poll, wait_until

pytestmark = pytest.mark.e2e

# One input per batch on one thread: the abandoned work takes the model a long while (compared with what
# the test does between seeing it queued and leaving), so it is still queued when its clients leave.
SERVER_FLAGS = ("--max_request_bytes=1048576", "--max_batch_size=1", "--threads=1")
INFLIGHT = "maskserve_inflight_requests"
QUEUE = f'maskserve_queue_inputs{{model_name="{MODEL}"}}'
V1_PREDICT = 'route="/v1/models/{name}:predict"'
PREDICT_499 = 'maskserve_requests_total{protocol="v1",route="/v1/models/{name}:predict",status="499"}'
# 6 requests of 128 distinct texts, under --max_queue (1024).
ABANDONED = 6
TEXTS_PER_REQUEST = 128


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


def _predicts(samples: dict[str, float]) -> float:
    """KServe V1 predict requests answered so far, whatever the status."""
    return sum(v for k, v in samples.items() if k.startswith("maskserve_requests_total{") and V1_PREDICT in k)


def queue_empty(server: LiveServer) -> None:
    """Until the server has dealt with every queued input (computed or dropped it)."""
    wait_until(lambda: server.metrics()[QUEUE] == 0, "the queue is empty")


def abandon_large_requests(server: LiveServer) -> float:
    """Send whole requests with many inputs over raw sockets, then close without reading the answers, as
    soon as all of them have reached the server and their inputs are queued. Once the server is done with
    them: how many it recorded as closed by the client (499)."""
    before = server.metrics()

    def all_queued() -> bool:
        now = server.metrics()
        # In flight or answered: every request was read. Both change in one step when a request finishes.
        arrived = now[INFLIGHT] - before[INFLIGHT] + _predicts(now) - _predicts(before)
        return arrived >= ABANDONED and now[QUEUE] > 0

    sockets = []
    try:
        for tag in range(ABANDONED):
            body = json.dumps({"instances": _texts(tag)}).encode()
            sock = _connect(server)
            sockets.append(sock)
            sock.sendall(_http_request(f"/v1/models/{MODEL}:predict", body))
        wait_until(all_queued, "every abandoned request was read and its inputs queued")
    finally:
        for sock in sockets:
            sock.close()
    # Done with them: none in flight and nothing queued (the unfinished requests are still open and counted
    # in both readings, so their 499s later are not counted here).
    after = poll(server.metrics, lambda s: s[INFLIGHT] == before[INFLIGHT] and s[QUEUE] == 0)
    return after.get(PREDICT_499, 0.0) - before.get(PREDICT_499, 0.0)


def cancel_grpc_calls(server: LiveServer) -> None:
    with server.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        calls = [
            stub.ModelInfer.future(grpc_request(_texts(100 + tag)), timeout=DEADLINE_S) for tag in range(3)
        ]
        # The calls reach the server before they are cancelled: their inputs are queued (or, if the server
        # was fast, they are already answered).
        wait_until(
            lambda: server.metrics()[QUEUE] > 0 or all(call.done() for call in calls),
            "the gRPC calls reached the queue",
        )
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
    """The gauges once they are back at their idle values (or when a hang is certain: the tests then fail on
    them); how long that took is reported, never judged."""
    started = time.monotonic()
    samples = poll(
        server.metrics,
        lambda s: s[INFLIGHT] == idle_inflight and s[QUEUE] == 0,
        timeout=HANG_S,
        every=0.05,
    )
    return samples, time.monotonic() - started


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
        # Three of them have a complete head: they reach the application, which waits for their bodies.
        held.inflight = poll(lambda: server.metrics()[INFLIGHT], lambda n: n >= idle + 3)
        cancel_grpc_calls(server)
        queue_empty(server)  # what is queued from here on is the abandoned requests' work
        abandoned_499 = abandon_large_requests(server)
    finally:
        for sock in held.sockets:
            sock.close()
    settled, seconds = wait_settled(server, idle)
    return Aftermath(
        idle_inflight=idle,
        held_inflight=held.inflight,
        settled=settled,
        settle_seconds=seconds,
        disconnects_recorded=abandoned_499,
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
