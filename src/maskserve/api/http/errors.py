"""The one place where errors become HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from maskserve.api.http.deps import ClientDisconnected
from maskserve.api.http.responses import error_response
from maskserve.errors import MaskserveError, ModelNotReady

logger = logging.getLogger(__name__)


async def _maskserve_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, MaskserveError)
    # 503 (loading, draining) and 504 are the server's state, answered as designed, not failures.
    if exc.status == 504:
        logger.warning("request timed out: %s", exc.message)
    elif exc.status >= 500 and exc.status != 503:
        logger.error("request failed: %s", exc.message)
    extra = {}
    if isinstance(exc, ModelNotReady) and exc.estimated_time is not None:
        extra["estimated_time"] = exc.estimated_time
    return error_response(exc.status, exc.message, exc.headers, **extra)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(400, f"invalid request: '{where}': {first.get('msg')}")


async def _client_gone(_: Request, exc: Exception) -> Response:
    # Nobody will read this; 499 is what access logs conventionally record for it.
    return Response(status_code=499)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error", exc_info=exc)
    # Starlette answers this one from outside the request-context middleware: add the id it assigned, so
    # the client can quote it when looking for the traceback in the logs.
    request_id = getattr(request.state, "request_id", None)
    return error_response(
        500,
        f"internal error ({type(exc).__name__}); the server logs have the details",
        {"X-Request-Id": request_id} if request_id else None,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MaskserveError, _maskserve_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnected, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
