"""Logging: one handler on the root logger, text or JSON lines, each carrying the current request's id.

Structured fields travel in one well-defined ``extra`` attribute, ``fields``::

    logger.info("access", extra={"fields": {"status": 200, "latency_ms": 3.1}})

The JSON formatter puts them at the top level of the line; the text formatter appends them as
``key=value``. Anything else passed through ``extra`` is ignored by both, so a stray attribute cannot
leak into the output.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO

LogFormat = Literal["text", "json"]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("maskserve_request_id", default=None)
"""The id of the request being handled; set by the HTTP middleware for the duration of each request."""

FIELDS_ATTRIBUTE: Final = "fields"
REDACTED: Final = "[redacted]"
SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie"})
# Routed through the root logger, so that the server's own lines share our format and level.
ROUTED_LOGGERS: Final = ("uvicorn", "uvicorn.error")

_CORE_KEYS: Final = ("time", "level", "logger", "message")


def _utc_iso(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def record_request_id(record: logging.LogRecord) -> str | None:
    """The request id a record belongs to: stamped on the record, else the one current while formatting."""
    stamped = getattr(record, "request_id", None)
    return stamped if isinstance(stamped, str) else request_id.get()


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, FIELDS_ATTRIBUTE, None)
    return dict(fields) if isinstance(fields, Mapping) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    ``request_id`` when set, the record's ``fields``, and ``exc_info`` / ``stack_info`` as strings."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = record_request_id(record)
        if rid is not None:
            payload["request_id"] = rid
        for key, value in record_fields(record).items():
            # The core keys are what log pipelines index on; a field must not be able to forge them.
            if key not in _CORE_KEYS:
                payload[str(key)] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        # default=str: a field that JSON cannot represent is written as its str(), never lost with an error.
        return json.dumps(payload, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> [<request id>]: <message> key=value ...`` then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{_utc_iso(record.created)} {record.levelname} {record.name}"
        rid = record_request_id(record)
        if rid is not None:
            head += f" [{rid}]"
        text = f"{head}: {record.getMessage()}"
        fields = record_fields(record)
        if rid is not None and fields.get("request_id") == rid:
            del fields["request_id"]  # already in the brackets
        if fields:
            text += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    # Quoted when it would otherwise be ambiguous to split on spaces or '='.
    if text == "" or any(c.isspace() or c in '="' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[TextIO]
else:
    _StreamHandler = logging.StreamHandler


class _InstalledHandler(_StreamHandler):
    """Marks the handler ``configure_logging`` owns, so that a second call replaces it."""


def _level_number(level: str) -> int:
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}; expected debug, info, warning, error or critical")
    return number


def configure_logging(level: str, fmt: LogFormat, *, stream: TextIO | None = None) -> None:
    """Send every log line through one handler on the root logger, in ``fmt``, at ``level``.

    Calling it again replaces the handler it installed before (other handlers, such as pytest's, are left
    alone). uvicorn's loggers lose their own handlers and propagate to the root, so their lines share the
    format; uvicorn must then be run without its own logging config (``log_config=None``), which would
    otherwise install its handlers again. ``stream`` defaults to stderr.
    """
    number = _level_number(level)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
    elif fmt == "text":
        formatter = TextFormatter()
    else:
        raise ValueError(f"unknown log format {fmt!r}; expected 'text' or 'json'")
    handler = _InstalledHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _InstalledHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)
    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        for theirs in list(routed.handlers):
            routed.removeHandler(theirs)
        routed.setLevel(logging.NOTSET)
        routed.propagate = True


def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]],
) -> dict[str, str]:
    """Headers as a ``{lower-case name: value}`` dict fit for a log line: credentials become
    ``[redacted]``; repeated headers are joined with ``", "``. Accepts a mapping or ASGI's raw pairs."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = (raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name).lower()
        value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
        if name in SECRET_HEADERS:
            value = REDACTED
        out[name] = value if name not in out or name in SECRET_HEADERS else f"{out[name]}, {value}"
    return out
