"""The catalog of malformed and hostile requests (``catalog.py``) against one real server, over KServe V1,
the Open Inference Protocol (REST, its binary extension, and gRPC) and the Hugging Face Inference API.

Each one must be refused with a 4xx (gRPC: a status that is neither OK nor INTERNAL / UNKNOWN) carrying a
message a client can act on, and the server must answer a good request right after it. The last test
checks that the whole catalog left no server error behind: no 5xx in the metrics, no ERROR line or
traceback in the log, and the process still serving every protocol.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from reliability.catalog import (
    GRPC_CASES,
    HTTP_CASES,
    LIMIT_FLAGS,
    RAW_CASES,
    Grpc,
    Http,
    Raw,
    send_grpc,
    send_http,
    send_raw,
)
from reliability.live import LiveServer, good_grpc, good_hf, good_v1, good_v2

pytestmark = pytest.mark.e2e

# The response cache is off so that every good request after a case really runs the model.
SERVER_FLAGS = (*LIMIT_FLAGS, "--cache_size=0")
MAX_MESSAGE_CHARS = 1000


def assert_useful(message: str, words: tuple[str, ...]) -> None:
    """A message a client can act on: short, no server internals, naming what was wrong."""
    assert message.strip(), "empty error message"
    assert len(message) <= MAX_MESSAGE_CHARS, f"{len(message)}-character message: {message[:200]}..."
    for internal in ("Traceback", 'File "', "internal error", "Exception"):
        assert internal not in message, f"{internal!r} in {message!r}"
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"


def test_the_catalog_is_big_enough() -> None:
    # At least 40 cases, and every contract gets its share (binary-extension cases count for V2).
    ids = [c.id for c in (*HTTP_CASES, *RAW_CASES, *GRPC_CASES)]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    contracts = Counter({"bin": "v2"}.get(i.split("-", 1)[0], i.split("-", 1)[0]) for i in ids)
    assert len(ids) >= 40
    assert min(contracts["v1"], contracts["hf"], contracts["v2"], contracts["grpc"]) >= 10, contracts


def answered(server: LiveServer, status_class: str) -> dict[str, float]:
    """The HTTP answers so far with a status starting with ``status_class``, by protocol, route and status."""
    return {
        name: count
        for name, count in server.metrics().items()
        if name.startswith("maskserve_requests_total{") and f'status="{status_class}' in name
    }


def server_errors(server: LiveServer) -> dict[str, float]:
    return answered(server, "5")


@pytest.fixture(scope="module")
def reference(server: LiveServer) -> Iterator[dict[str, Any]]:
    """Before any hostile request: the top-1 answer to the good request over each protocol, the 5xx answers
    already counted and the log written so far (the readiness probe's 503s while the model loaded, each
    logged as an ERROR)."""
    with server.client() as client, server.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        yield {
            "hf": good_hf(client),
            "v1": good_v1(client),
            "v2": good_v2(client),
            "grpc": good_grpc(stub),
            "server_errors": server_errors(server),
            "client_errors": sum(answered(server, "4").values()),
            "log_offset": server.log_size(),
        }


@pytest.mark.parametrize("case", HTTP_CASES, ids=lambda c: c.id)
def test_http_case(case: Http, server: LiveServer, reference: dict[str, Any]) -> None:
    with server.client() as client:
        answer = send_http(client, case)
    assert answer.status == case.status, answer.message[:500]
    assert answer.json_error, f'not an {{"error": "..."}} JSON answer: {answer.message[:500]}'
    assert_useful(answer.message, case.words)
    with server.client() as client:
        assert good_hf(client) == reference["hf"]


@pytest.mark.parametrize("case", RAW_CASES, ids=lambda c: c.id)
def test_raw_case(case: Raw, server: LiveServer, reference: dict[str, Any]) -> None:
    answer = send_raw(server.http_port, case)
    assert answer.status == case.status, answer.message[:500]
    # Framing errors are answered by the HTTP server's parser before maskserve sees the request.
    assert answer.json_error == case.from_app, answer.message[:500]
    assert_useful(answer.message, case.words)
    with server.client() as client:
        assert good_hf(client) == reference["hf"]


@pytest.mark.parametrize("case", GRPC_CASES, ids=lambda c: c.id)
def test_grpc_case(case: Grpc, server: LiveServer, reference: dict[str, Any]) -> None:
    with server.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        answer = send_grpc(stub, case)
        assert answer.status not in {grpc.StatusCode.OK, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
        assert answer.status == case.code, answer.message
        assert_useful(answer.message, case.words)
        assert good_grpc(stub) == reference["grpc"]


def test_still_serving_after_the_catalog(server: LiveServer, reference: dict[str, Any]) -> None:
    assert server.alive()
    with server.client() as client, server.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert good_hf(client) == reference["hf"]
        assert good_hf(client, path="/") == reference["hf"]
        assert good_v1(client) == reference["v1"]
        assert good_v2(client) == reference["v2"]
        assert good_grpc(stub) == reference["grpc"]
    assert server_errors(server) == reference["server_errors"]
    # The metrics saw every refusal the application made (the HTTP parser's own 400s never reach it).
    refused_by_the_app = len(HTTP_CASES) + sum(c.from_app for c in RAW_CASES)
    assert sum(answered(server, "4").values()) - reference["client_errors"] == refused_by_the_app
    assert server.log_problems(since=reference["log_offset"]) == []
