"""Errors that carry their HTTP status, so every transport maps them in one place."""

from __future__ import annotations

from typing import Any

CLIPPED_CHARS = 40


def clip(text: str) -> str:
    """``text`` cut to its first characters: messages quote what the client sent (a tensor name, a
    parameter), which can be megabytes long."""
    return text if len(text) <= CLIPPED_CHARS else text[:CLIPPED_CHARS] + "..."


def preview(value: Any) -> str:
    """``repr(value)``, clipped."""
    return clip(repr(value))


class MaskserveError(Exception):
    """Base error: ``status`` is the HTTP status a transport should answer with."""

    status: int = 500
    # The gRPC status by name when it is not the one the HTTP status maps to (errors.py imports no grpc).
    grpc_status: str | None = None

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return self.message


class BadRequest(MaskserveError):
    status = 400


class AnswerTooLarge(BadRequest):
    """The answer would exceed a transport's size limit; gRPC answers RESOURCE_EXHAUSTED, the status its
    own size checks use."""

    grpc_status = "RESOURCE_EXHAUSTED"


class Unauthorized(MaskserveError):
    status = 401


class NotFound(MaskserveError):
    status = 404


class PayloadTooLarge(MaskserveError):
    status = 413


class UnsupportedMediaType(MaskserveError):
    status = 415


class Overloaded(MaskserveError):
    """The admission queue is full; ``retry_after`` seconds is a hint for the client."""

    status = 429

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class ModelNotReady(MaskserveError):
    status = 503

    def __init__(self, message: str, *, estimated_time: float | None = None, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.estimated_time = estimated_time


class RequestTimeout(MaskserveError):
    status = 504


class InferenceFailed(MaskserveError):
    """The model itself failed on a batch; only the requests of that batch see this."""

    status = 500


class ModelLoadError(MaskserveError):
    """Raised at start-up: the model cannot be found, fetched or is not a masked LM."""

    status = 500


class ModelNotFoundError(ModelLoadError):
    """The model does not exist where it was looked for (or access to it was refused)."""

    status = 404


class NotAFillMaskModel(ModelLoadError):
    """The model exists but cannot fill masks (no masked-LM head, no mask token)."""

    status = 400


class ModelTooLarge(ModelLoadError):
    """The model alone is more than the model budget (--memory_budget) allows: it can never load here."""

    status = 507


class ModelUnloaded(ModelNotReady):
    """The model was unloaded between a request finding it and using it; the request looks again."""


class UpstreamError(ModelLoadError):
    """Where the model comes from (the Hub, a bucket) failed or could not be reached."""

    status = 502
