"""JSON responses rendered with orjson (numbers stay numbers, numpy values included)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response

from maskserve.core.context import RequestContext
from maskserve.protocols.common import dumps


class JSONResponse(StarletteJSONResponse):
    """A JSONResponse subclass (so FastAPI documents each route's response model) rendered by orjson."""

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            content = content.model_dump(mode="json")
        return dumps(content)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


R = TypeVar("R", bound=Response)

CACHE_HEADER = "X-Cache"
WARNING_HEADER = "Warning"


def warning_value(text: str) -> str:
    """``299 - "text"``, the form Kubernetes' API server uses: warn-code 299 (a persistent warning), no
    agent, the text as a quoted string. Header values are ASCII here: other characters are escaped as
    Python writes them, and quotes and backslashes as a quoted string requires."""
    plain = text.encode("ascii", "backslashreplace").decode("ascii")
    plain = "".join(c if c.isprintable() else " " for c in plain)
    return '299 - "' + plain.replace("\\", "\\\\").replace('"', '\\"') + '"'


def with_outcome(response: R, outcome: RequestContext) -> R:
    """``X-Cache: hit`` (every input from the cache), ``miss`` (some computed) or ``bypass`` (not used), and
    one ``Warning`` header per warning of the request."""
    response.headers[CACHE_HEADER] = outcome.label
    for warning in outcome.warnings:
        response.headers.append(WARNING_HEADER, warning_value(warning))
    return response
