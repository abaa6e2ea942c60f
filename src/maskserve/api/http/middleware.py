"""Pure ASGI middlewares: the request context (id, access log, metrics) and the request body limit.

They are plain ASGI callables rather than ``BaseHTTPMiddleware``, which runs the app in a separate task
behind a memory stream: that buffers streamed responses and hides ``http.disconnect`` from the app, which
the routes rely on to drop the work of clients that went away.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any, Final

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from maskserve import logs
from maskserve.api.http.responses import error_response
from maskserve.core.metrics import Metrics

access_logger = logging.getLogger("maskserve.access")

REQUEST_ID_HEADER: Final = "X-Request-Id"
MAX_REQUEST_ID_LENGTH: Final = 128
LOGGED_BODY_BYTES: Final = 2048
UNMATCHED: Final = "unmatched"
# Not a status any server sends: the conventional access-log code for "the client closed the connection".
CLIENT_CLOSED: Final = 499

_ID_HEADER: Final = REQUEST_ID_HEADER.lower().encode("latin-1")
_DOCS: Final = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})


def sane_request_id(value: bytes) -> bool:
    """Printable ASCII without spaces, at most 128 bytes: safe to echo in a header and write to a log."""
    return 0 < len(value) <= MAX_REQUEST_ID_LENGTH and all(0x21 <= b <= 0x7E for b in value)


def protocol_of(method: str, path: str) -> str:
    """The protocol label for metrics, from the path alone (so requests refused before routing have one)."""
    parts = path.split("/")
    probe = method in {"GET", "HEAD"}
    if path.startswith("/v2/health/") or (probe and path == "/"):
        return "health"
    if probe and len(parts) == 4 and parts[1] == "v1" and parts[2] == "models" and ":" not in parts[3]:
        return "health"
    if probe and len(parts) == 5 and parts[1:3] == ["v2", "models"] and parts[4] == "ready":
        return "health"
    if path == "/v1" or path.startswith("/v1/"):
        return "v1"
    if path == "/v2" or path.startswith("/v2/"):
        return "v2"
    if path == "/" or path.startswith("/models/"):
        return "hf"
    if path == "/metrics":
        return "metrics"
    if path in _DOCS:
        return "docs"
    return "other"


def route_template(scope: Scope, entry_root_path: str, status: int) -> str:
    """The template of the route that handled the request (``/v2/models/{name}/infer``), else
    ``"unmatched"``: never the raw path, which would make one metric series per URL.

    Starlette's router (and FastAPI's, for its own routes) leaves the matched route in ``scope["route"]``,
    a scope the middleware shares. A mounted app extends ``root_path``; that extension is the mount prefix.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    # FastAPI keeps an included router's routes unprefixed in scope["route"]; the prefixed template is on
    # its per-request route context. Read defensively: it is not a public interface.
    fastapi_scope = scope.get("fastapi")
    context = fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    if route is not None and getattr(context, "original_route", None) is route:
        prefixed = getattr(context, "path_format", None)
        template = prefixed if isinstance(prefixed, str) and prefixed else template
    if isinstance(template, str):
        root_path = scope.get("root_path", "")
        prefix = root_path[len(entry_root_path) :] if root_path.startswith(entry_root_path) else ""
        if isinstance(route, Mount):
            # A mounted plain ASGI app: the mount's own path is already part of the prefix.
            return f"{prefix}/{{path}}"
        return prefix + template
    if status == 404:
        return UNMATCHED
    # FastAPI does not record plain Starlette routes (its docs pages) in the scope: match them again.
    probe = {**scope, "root_path": entry_root_path}
    for candidate in getattr(scope.get("app"), "routes", ()):
        path_format = getattr(candidate, "path_format", None)
        if (
            isinstance(path_format, str)
            and not isinstance(candidate, Mount)
            and candidate.matches(probe)[0] is not Match.NONE
        ):
            return path_format
    return UNMATCHED


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


class _Exchange:
    """One request and its response, as seen through the wrapped ``receive`` and ``send``."""

    def __init__(self, receive: Receive, send: Send, request_id: str, keep_body: bool) -> None:
        self._receive = receive
        self._send = send
        self._echoed = (_ID_HEADER, request_id.encode("ascii"))
        self.status: int | None = None
        self.complete = False
        self.client_gone = False
        self.bytes_in = 0
        self.bytes_out = 0
        self.body: bytearray | None = bytearray() if keep_body else None
        self.body_truncated = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            self.bytes_in += len(chunk)
            if self.body is not None:
                room = max(LOGGED_BODY_BYTES - len(self.body), 0)
                self.body += chunk[:room]
                self.body_truncated = self.body_truncated or len(chunk) > room
        elif message["type"] == "http.disconnect" and not self.complete:
            # Only before completion: servers also answer receive() with http.disconnect once the response
            # is complete, and that client did get its answer.
            self.client_gone = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _ID_HEADER]
            message = {**message, "headers": [*headers, self._echoed]}
        elif kind == "http.response.body":
            self.bytes_out += len(message.get("body", b""))
        try:
            await self._send(message)
        except OSError:
            # What servers raise when writing to a closed connection.
            self.client_gone = True
            raise
        last_body = kind == "http.response.body" and not message.get("more_body", False)
        if last_body or kind == "http.response.pathsend":
            self.complete = True

    def final_status(self, failed: bool) -> int:
        # Whatever was answered after the client left (an error handler's 500, say) reached nobody.
        if self.client_gone:
            return CLIENT_CLOSED
        if self.complete and self.status is not None:
            return self.status
        if failed or self.status is None:
            # The server error middleware (or the server) answers 500 for an app that raised.
            return 500
        return self.status


class RequestContextMiddleware:
    """Request id, in-flight count, per-request metrics and one access log line per HTTP request.

    The id comes from a sane ``X-Request-Id`` header, else is generated; it is echoed on the response,
    current in ``maskserve.logs.request_id`` (so every log line of the request carries it) and kept in
    ``request.state.request_id``. The access line (logger ``maskserve.access``, INFO) has method, route
    template, path (without the query string, which may carry secrets), status, latency, id, client address
    and byte counts; the request body only with ``log_bodies`` (first 2 KiB), the request headers only with
    ``log_headers`` (credentials redacted). A request whose client left before its response completed is
    recorded as 499, and the exception its departure caused is not re-raised (no traceback for it). An app
    that raised is recorded as 500; its exception goes on to the error middleware outside this one.
    """

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics | None, log_bodies: bool = False, log_headers: bool = False
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.log_bodies = log_bodies
        self.log_headers = log_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        entry_root_path: str = scope.get("root_path", "")
        incoming = _header(scope["headers"], _ID_HEADER)
        rid = incoming[0].decode("ascii") if incoming and sane_request_id(incoming[0]) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        seen = _Exchange(receive, send, rid, keep_body=self.log_bodies)
        token = logs.request_id.set(rid)
        if self.metrics is not None:
            self.metrics.request_started()
        failed = False
        try:
            await self.app(scope, seen.receive, seen.send)
        except (ClientDisconnect, OSError):
            # The client left and the app noticed: a 499, not an error. The same exceptions for another
            # reason are errors.
            if not seen.client_gone:
                failed = True
                raise
        except BaseException:
            failed = True
            raise
        finally:
            seconds = time.perf_counter() - start
            status = seen.final_status(failed)
            method: str = scope["method"]
            path: str = scope["path"]
            route = route_template(scope, entry_root_path, status)
            if self.metrics is not None:
                self.metrics.request_finished()
                self.metrics.observe_request(protocol_of(method, path), route, status, seconds)
            self._log(scope, rid, route, status, seconds, seen)
            # Left set when the app raised: the error middleware outside this one logs the traceback after
            # we return, and that line needs the id most. Servers run each request in a task (and a context)
            # of its own, so it goes no further.
            if not failed:
                logs.request_id.reset(token)

    def _log(self, scope: Scope, rid: str, route: str, status: int, seconds: float, seen: _Exchange) -> None:
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "request_id": rid,
            "client": f"{client[0]}:{client[1]}" if client else None,
            "bytes_in": seen.bytes_in,
            "bytes_out": seen.bytes_out,
        }
        if seen.body is not None:
            fields["body"] = seen.body.decode("utf-8", errors="replace")
            fields["body_truncated"] = seen.body_truncated
        if self.log_headers:
            fields["headers"] = logs.redact_headers(scope["headers"])
        access_logger.info("%s %s %d", scope["method"], scope["path"], status, extra={"fields": fields})


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once a streamed body passes the limit."""


def _declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length, None when absent; ValueError when malformed or contradictory."""
    values = {value.strip() for value in _header(headers, b"content-length")}
    if not values:
        return None
    if len(values) > 1:
        raise ValueError("the request has several different Content-Length headers")
    (value,) = values
    if not value.isdigit():
        shown = value[:40].decode("latin-1")
        raise ValueError(f"the Content-Length header {shown!r} is not a non-negative integer")
    return int(value)


class BodyLimitMiddleware:
    """413 for request bodies larger than ``max_bytes``: before the app runs when Content-Length says so,
    else as soon as a streamed (chunked) body grows past the limit, without reading the rest of it.

    In the streamed case the app is already running: ``receive`` raises into it, whatever it answers is
    discarded and the 413 is sent instead (unless it had already started its response). ``http.disconnect``
    messages pass through unchanged. A malformed Content-Length is answered 400.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> Response:
        # No "Connection: close": closing with the rest of the upload unread makes the kernel reset the
        # connection, and the client then sees a reset instead of this answer. Servers discard the rest of
        # a body nobody reads (uvicorn until its keep-alive timeout), which costs bandwidth but no memory.
        return error_response(
            413, f"request body is {size} bytes; the limit is {self.max_bytes} bytes (--max_request_bytes)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = _declared_length(scope["headers"])
        except ValueError as exc:
            await error_response(400, str(exc))(scope, receive, send)
            return
        if declared is not None and declared > self.max_bytes:
            await self._too_large(str(declared))(scope, receive, send)
            return

        received = 0
        tripped = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, tripped
            if tripped:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    tripped = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if tripped and not started:
                # The app's answer to the exception it was handed; the 413 replaces it.
                return
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not tripped or started:
                raise
        if tripped and not started:
            await self._too_large(f"at least {received}")(scope, receive, send)
