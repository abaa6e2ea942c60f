"""JSON responses rendered with orjson (numbers stay numbers, numpy values included)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse as StarletteJSONResponse

from maskserve.core.cache import CacheOutcome
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


CACHE_HEADER = "X-Cache"


def cache_headers(outcome: CacheOutcome) -> dict[str, str]:
    """``X-Cache: hit`` (every input from the cache), ``miss`` (some computed) or ``bypass`` (not used)."""
    return {CACHE_HEADER: outcome.label}
