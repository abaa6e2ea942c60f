"""Parsing shared by every protocol: JSON bodies, texts and fill-mask parameters."""

from __future__ import annotations

from typing import Any

import orjson

from maskserve.errors import BadRequest


def load_json(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("the request body is empty; send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def require_texts(value: Any, field: str) -> list[str]:
    """A string or a non-empty list of strings."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise BadRequest(f"'{field}' must be a string or a list of strings, got {type_name(value)}")
    if not value:
        raise BadRequest(f"'{field}' is an empty list; send at least one text")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise BadRequest(f"'{field}[{index}]' must be a string, got {type_name(item)}")
    return list(value)


_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


def parse_flag(value: str | None, name: str) -> bool | None:
    """A boolean header, read leniently (``true``/``1``/``false``/``0`` and the like); None when absent."""
    if value is None or not value.strip():
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadRequest(f"header {name} must be true or false (or 1 or 0), got {value[:40]!r}")
