"""The request-context and body-limit middlewares, around small apps built here (no model needed)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from maskserve import logs
from maskserve.api.http.middleware import (
    BodyLimitMiddleware,
    RequestContextMiddleware,
    protocol_of,
    sane_request_id,
)
from maskserve.core.metrics import Metrics

LIMIT = 1024
INFER = "/v2/models/{name}/infer"


def build_app(metrics: Metrics | None, **context: Any) -> FastAPI:
    """Routes shaped like the server's, wrapped the way the server wraps them."""
    router = APIRouter()

    @router.post(INFER)
    async def infer(request: Request, name: str) -> dict[str, Any]:
        body = await request.body()
        logging.getLogger("maskserve.test").info("inferring for %s", name)
        inflight = metrics.registry.get_sample_value("maskserve_inflight_requests") if metrics else None
        return {"bytes": len(body), "request_id": request.state.request_id, "inflight": inflight}

    @router.post("/v2/models/{name}/parsed")
    async def parsed(payload: dict[str, Any]) -> dict[str, Any]:
        return {"keys": len(payload)}

    @router.get("/v2/models/{name}/ready")
    async def ready(name: str) -> dict[str, Any]:
        return {"name": name, "ready": True}

    @router.post("/models/{model_id:path}")
    async def hf(model_id: str) -> dict[str, Any]:
        return {"model": model_id}

    @router.get("/sets-its-own-id")
    async def own_id() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"X-Request-Id": "from-the-app"})

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    async def unexpected(request: Request, exc: Exception) -> PlainTextResponse:
        # As the server's handler does; Starlette runs it in the error middleware, outside ours.
        logging.getLogger("maskserve.test").error("unexpected error", exc_info=exc)
        return PlainTextResponse("internal error", status_code=500)

    app = FastAPI(exception_handlers={Exception: unexpected})
    app.include_router(router)
    app.include_router(router, prefix="/prefixed")
    app.mount("/sub", Starlette(routes=[Route("/in/{a}", lambda _: PlainTextResponse("in"))]))
    app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, **context)
    return app


def client_of(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("10.0.0.7", 4321))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics("bert")


@pytest.fixture
async def client(metrics: Metrics) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(build_app(metrics)) as c:
        yield c


@pytest.fixture
def log_output() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON lines of every ``maskserve.*`` record, formatted as they are emitted (as in production)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("maskserve")
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(saved)


def access_lines(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in output if line["logger"] == "maskserve.access"]


def request_samples(metrics: Metrics) -> list[dict[str, str]]:
    body, _ = metrics.render()
    return [
        {**s.labels, "value": str(s.value)}
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "maskserve_requests_total"
    ]


def count(metrics: Metrics, **labels: str) -> float | None:
    return metrics.registry.get_sample_value("maskserve_requests_total", labels)


# --- request ids ---


async def test_a_sane_request_id_is_echoed_and_reaches_the_app(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/bert/infer", content=b"x", headers={"X-Request-Id": "abc-123_X"})
    assert response.headers["x-request-id"] == "abc-123_X"
    assert response.json()["request_id"] == "abc-123_X"


async def test_an_id_is_generated_when_none_is_sent(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v2/models/bert/infer", content=b"x")).headers["x-request-id"]
    second = (await client.post("/v2/models/bert/infer", content=b"x")).headers["x-request-id"]
    assert len(first) == 32
    int(first, 16)
    assert first != second


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "tab\there", ""])
async def test_an_unsafe_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.post("/v2/models/bert/infer", content=b"x", headers={"X-Request-Id": bad})
    assert response.headers["x-request-id"] != bad
    assert len(response.headers["x-request-id"]) == 32


def test_sane_request_id() -> None:
    assert sane_request_id(b"a" * 128)
    assert sane_request_id(b"0f9c/1:2=3")
    assert not sane_request_id(b"a" * 129)
    assert not sane_request_id("é".encode())
    assert not sane_request_id(b"new\nline")


async def test_the_response_carries_exactly_one_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/sets-its-own-id", headers={"X-Request-Id": "mine"})
    assert response.headers.get_list("x-request-id") == ["mine"]


async def test_log_lines_inside_a_request_carry_its_id(
    client: httpx.AsyncClient, log_output: Callable[[], list[dict[str, Any]]]
) -> None:
    await client.post("/v2/models/bert/infer", content=b"x", headers={"X-Request-Id": "trace-me"})
    inside = [line for line in log_output() if line["logger"] == "maskserve.test"]
    assert [line["request_id"] for line in inside] == ["trace-me"]
    assert logs.request_id.get() is None


# --- metrics ---


async def test_metrics_use_route_templates_not_paths(client: httpx.AsyncClient, metrics: Metrics) -> None:
    await client.post("/v2/models/bert/infer", content=b"x")
    await client.post("/v2/models/roberta/infer", content=b"x")
    await client.post("/models/org/some-model", content=b"x")
    await client.get("/v2/models/bert/ready")
    await client.get("/no/such/route")
    await client.post("/prefixed/v2/models/bert/infer", content=b"x")
    await client.get("/sub/in/42")
    await client.get("/openapi.json")
    assert count(metrics, protocol="v2", route=INFER, status="200") == 2
    assert count(metrics, protocol="hf", route="/models/{model_id}", status="200") == 1
    assert count(metrics, protocol="health", route="/v2/models/{name}/ready", status="200") == 1
    assert count(metrics, protocol="other", route="unmatched", status="404") == 1
    assert count(metrics, protocol="other", route="/prefixed" + INFER, status="200") == 1
    assert count(metrics, protocol="other", route="/sub/in/{a}", status="200") == 1
    assert count(metrics, protocol="docs", route="/openapi.json", status="200") == 1
    routes = {sample["route"] for sample in request_samples(metrics)}
    assert not any(name in route for route in routes for name in ("bert", "roberta", "org", "42", "such"))
    duration = metrics.registry.get_sample_value(
        "maskserve_request_duration_seconds_count", {"protocol": "v2", "route": INFER}
    )
    assert duration == 2


async def test_inflight_requests_are_counted(client: httpx.AsyncClient, metrics: Metrics) -> None:
    response = await client.post("/v2/models/bert/infer", content=b"x")
    assert response.json()["inflight"] == 1
    assert metrics.registry.get_sample_value("maskserve_inflight_requests") == 0


async def test_an_app_error_is_counted_as_500(client: httpx.AsyncClient, metrics: Metrics) -> None:
    assert (await client.get("/boom")).status_code == 500
    assert count(metrics, protocol="other", route="/boom", status="500") == 1
    assert metrics.registry.get_sample_value("maskserve_inflight_requests") == 0


async def test_the_traceback_of_an_app_error_carries_the_request_id(
    client: httpx.AsyncClient, log_output: Callable[[], list[dict[str, Any]]]
) -> None:
    await client.get("/boom", headers={"X-Request-Id": "boom-1"})
    (error,) = [line for line in log_output() if line["level"] == "ERROR"]
    assert error["request_id"] == "boom-1"
    assert "RuntimeError: a bug" in error["exc_info"]
    (access,) = access_lines(log_output())
    assert (access["status"], access["request_id"]) == (500, "boom-1")


@pytest.mark.parametrize(
    ("method", "path", "protocol"),
    [
        ("POST", "/v1/models/bert:predict", "v1"),
        ("GET", "/v1/models", "v1"),
        ("GET", "/v1/models/bert", "health"),
        ("POST", "/v2/models/bert/infer", "v2"),
        ("GET", "/v2/models/bert", "v2"),
        ("GET", "/v2", "v2"),
        ("GET", "/v2/health/live", "health"),
        ("GET", "/v2/models/bert/ready", "health"),
        ("POST", "/", "hf"),
        ("GET", "/", "health"),
        ("POST", "/models/google-bert/bert-base-uncased", "hf"),
        ("GET", "/metrics", "metrics"),
        ("GET", "/docs", "docs"),
        ("GET", "/openapi.json", "docs"),
        ("GET", "/favicon.ico", "other"),
    ],
)
def test_protocol_labels(method: str, path: str, protocol: str) -> None:
    assert protocol_of(method, path) == protocol


# --- access log ---


async def test_one_access_line_per_request_without_secrets_or_bodies(
    client: httpx.AsyncClient, log_output: Callable[[], list[dict[str, Any]]]
) -> None:
    await client.post(
        "/v2/models/bert/infer?token=query-secret",
        content=b"the secret text",
        headers={"Authorization": "Bearer key-secret", "X-Request-Id": "r1"},
    )
    (line,) = access_lines(log_output())
    assert line["level"] == "INFO"
    assert {k: line[k] for k in ("method", "route", "path", "status", "request_id", "client")} == {
        "method": "POST",
        "route": INFER,
        "path": "/v2/models/bert/infer",
        "status": 200,
        "request_id": "r1",
        "client": "10.0.0.7:4321",
    }
    assert line["bytes_in"] == len(b"the secret text")
    assert line["bytes_out"] > 0
    assert line["latency_ms"] >= 0
    everything = json.dumps(log_output())
    assert "secret" not in everything
    assert "body" not in line
    assert "headers" not in line


async def test_bodies_and_redacted_headers_are_logged_when_asked(
    metrics: Metrics, log_output: Callable[[], list[dict[str, Any]]]
) -> None:
    app = build_app(metrics, log_bodies=True, log_headers=True)
    async with client_of(app) as client:
        await client.post(
            "/v2/models/bert/parsed", json={"inputs": "z" * 900}, headers={"Authorization": "k"}
        )
        await client.post("/v2/models/bert/infer", content=b"ab", headers={"x-api-key": "k2"})
    parsed, short = access_lines(log_output())
    assert json.loads(parsed["body"]) == {"inputs": "z" * 900}
    assert parsed["body_truncated"] is False
    assert short["body"] == "ab"
    assert parsed["headers"]["authorization"] == "[redacted]"
    assert short["headers"]["x-api-key"] == "[redacted]"


async def test_logged_bodies_stop_at_two_kib(log_output: Callable[[], list[dict[str, Any]]]) -> None:
    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await PlainTextResponse("ok")(scope, receive, send)

    app = RequestContextMiddleware(echo, metrics=None, log_bodies=True)
    async with client_of(app) as client:
        await client.post("/upload", content="é" * 3000)
    (line,) = access_lines(log_output())
    assert line["body_truncated"] is True
    assert line["body"] == "é" * 1024
    assert line["bytes_in"] == 6000


# --- body limit ---


async def test_declared_oversize_body_is_refused_before_the_app_runs(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    response = await client.post("/v2/models/bert/infer", content=b"x" * 2000)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "request body is 2000 bytes; the limit is 1024 bytes (--max_request_bytes)"
    }
    assert "x-request-id" in response.headers
    assert count(metrics, protocol="v2", route="unmatched", status="413") == 1


async def test_a_body_at_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/bert/infer", content=b"x" * LIMIT)
    assert response.status_code == 200
    assert response.json()["bytes"] == LIMIT


def chunks(produced: list[int], size: int, n: int) -> AsyncIterator[bytes]:
    async def generate() -> AsyncIterator[bytes]:
        for _ in range(n):
            produced.append(size)
            yield b"y" * size

    return generate()


@pytest.mark.parametrize("path", ["/v2/models/bert/infer", "/v2/models/bert/parsed"])
async def test_a_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient, path: str) -> None:
    # /parsed makes FastAPI read the body itself, and turn what receive raised into a 400: still a 413.
    produced: list[int] = []
    response = await client.post(path, content=chunks(produced, 400, 50))
    assert response.status_code == 413
    assert response.json() == {
        "error": "request body is at least 1200 bytes; the limit is 1024 bytes (--max_request_bytes)"
    }
    assert len(produced) == 3, "the rest of the body must not be read"


async def test_a_streamed_body_under_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/bert/infer", content=chunks([], 100, 10))
    assert response.status_code == 200
    assert response.json()["bytes"] == 1000


def http_scope(headers: list[tuple[bytes, bytes]], path: str = "/upload") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


class Wire:
    """A scripted client connection: what the app receives, and what it sent."""

    def __init__(self, *incoming: Message, send_fails_after: int | None = None) -> None:
        self.incoming = list(incoming)
        self.sent: list[Message] = []
        self.send_fails_after = send_fails_after

    async def receive(self) -> Message:
        return self.incoming.pop(0) if self.incoming else {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.send_fails_after is not None and len(self.sent) >= self.send_fails_after:
            raise OSError("connection reset by peer")
        self.sent.append(message)

    def status(self) -> int:
        return int(self.sent[0]["status"])

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


async def never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the app must not run")


@pytest.mark.parametrize(
    "lengths",
    [[b"abc"], [b"-5"], [b"1e3"], [b"10", b"12"], [b"\xd9\xa3"]],
    ids=["abc", "neg", "exp", "2", "uni"],
)
async def test_a_malformed_content_length_is_a_400(lengths: list[bytes]) -> None:
    wire = Wire()
    middleware = BodyLimitMiddleware(never_called, max_bytes=LIMIT)
    await middleware(http_scope([(b"content-length", v) for v in lengths]), wire.receive, wire.send)
    assert wire.status() == 400
    assert "Content-Length" in wire.json()["error"]


async def test_disconnect_messages_pass_through_unchanged() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        received.append(await receive())

    disconnect = {"type": "http.disconnect"}
    wire = Wire({"type": "http.request", "body": b"hi", "more_body": False}, disconnect)
    await BodyLimitMiddleware(app, max_bytes=LIMIT)(http_scope([]), wire.receive, wire.send)
    assert received[1] is disconnect


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
async def test_other_scopes_pass_through(kind: str) -> None:
    calls: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive, send))

    scope: Scope = {"type": kind, "path": "/ws", "headers": [(b"content-length", b"nonsense")]}
    wire = Wire()
    stack = RequestContextMiddleware(BodyLimitMiddleware(app, max_bytes=1), metrics=Metrics("m"))
    await stack(scope, wire.receive, wire.send)
    assert calls == [(scope, wire.receive, wire.send)]
    assert wire.sent == []


# --- clients that leave ---


async def test_a_client_leaving_mid_body_is_a_499_not_an_error(
    metrics: Metrics, log_output: Callable[[], list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    async def upload(request: Request) -> PlainTextResponse:
        await request.body()  # raises starlette's ClientDisconnect
        return PlainTextResponse("unreachable")

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    stack = RequestContextMiddleware(BodyLimitMiddleware(app, max_bytes=LIMIT), metrics=metrics)
    wire = Wire({"type": "http.request", "body": b"part", "more_body": True}, {"type": "http.disconnect"})
    await stack(http_scope([]), wire.receive, wire.send)  # must not raise
    (line,) = access_lines(log_output())
    assert (line["status"], line["level"], line["route"]) == (499, "INFO", "/upload")
    assert count(metrics, protocol="other", route="/upload", status="499") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_app_that_stops_for_a_departed_client_is_a_499(metrics: Metrics) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        assert (await receive())["type"] == "http.disconnect"

    wire = Wire({"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"})
    await RequestContextMiddleware(app, metrics=metrics)(http_scope([]), wire.receive, wire.send)
    assert count(metrics, protocol="other", route="unmatched", status="499") == 1


async def test_a_write_to_a_closed_connection_is_a_499(metrics: Metrics) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await send({"type": "http.response.body", "body": b"rest", "more_body": False})

    wire = Wire(send_fails_after=2)
    await RequestContextMiddleware(app, metrics=metrics)(http_scope([]), wire.receive, wire.send)
    assert count(metrics, protocol="other", route="unmatched", status="499") == 1


async def test_an_os_error_with_the_client_still_there_is_an_error(
    metrics: Metrics, log_output: Callable[[], list[dict[str, Any]]]
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise FileNotFoundError("missing")

    wire = Wire()
    with pytest.raises(FileNotFoundError):
        await RequestContextMiddleware(app, metrics=metrics)(http_scope([]), wire.receive, wire.send)
    (line,) = access_lines(log_output())
    assert line["status"] == 500
    assert count(metrics, protocol="other", route="unmatched", status="500") == 1


async def test_an_answer_the_app_completed_keeps_its_status(metrics: Metrics) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("", status_code=204)(scope, receive, send)
        # After the response, servers answer receive() with http.disconnect: that is not a departure.
        assert (await receive())["type"] == "http.disconnect"

    wire = Wire()
    await RequestContextMiddleware(app, metrics=metrics)(http_scope([]), wire.receive, wire.send)
    assert count(metrics, protocol="other", route="unmatched", status="204") == 1


async def test_mounted_plain_asgi_apps_are_labelled_by_their_mount(metrics: Metrics) -> None:
    async def static(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("file")(scope, receive, send)

    app = Starlette(routes=[Mount("/static", app=static)])
    async with client_of(RequestContextMiddleware(app, metrics=metrics)) as client:
        await client.get("/static/css/site.css")
    assert count(metrics, protocol="other", route="/static/{path}", status="200") == 1


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BodyLimitMiddleware(never_called, max_bytes=0)
