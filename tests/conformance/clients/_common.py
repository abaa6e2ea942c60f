"""Shared by the client scripts: read the spec, run named cases, print one JSON object on stdout.

The scripts run in their own interpreter because the kserve SDK and tritonclient.grpc register protobuf
symbols (``inference.*``) that maskserve's own gRPC stubs register too, and protobuf refuses duplicates in
one process. Each script reads a JSON spec on stdin and prints ``{"versions": {...}, "cases": {name:
{"ok": true, "value": ...} | {"ok": false, "error": "...", "traceback": "..."}}}``: one case failing does
not hide the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TextIO

Case = Callable[[], Any]


def read_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(sys.stdin.read())
    return spec


@contextlib.contextmanager
def stdout_for_json() -> Iterator[TextIO]:
    """Send everything else (the SDKs' log handlers bind ``sys.stdout`` at import) to stderr; yield the real
    stdout for the one JSON document."""
    real = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield real
    finally:
        sys.stdout = real


def plain(value: Any) -> Any:
    """numpy scalars and arrays, bytes and protobuf containers as plain JSON values (bytes as UTF-8 text)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def flat(value: Any) -> list[Any]:
    """Row-major flattening of a (possibly nested) list or array, as plain values."""
    items = plain(value)
    if not isinstance(items, list):
        return [items]
    out: list[Any] = []
    for item in items:
        out.extend(flat(item) if isinstance(item, list) else [item])
    return out


def tensor(name: str, datatype: str, shape: Any, array: Any, *, binary: bool | None = None) -> dict[str, Any]:
    """One output tensor as the client decoded it: declared shape, the decoded array's own shape (None for
    a plain list), row-major data, and whether it travelled in binary form (None when unknown)."""
    return {
        "name": name,
        "datatype": datatype,
        "shape": [int(d) for d in shape],
        "array_shape": [int(d) for d in array.shape] if hasattr(array, "shape") else None,
        "data": flat(array),
        "binary": binary,
    }


async def _run(cases: dict[str, Case]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, case in cases.items():
        try:
            value = case()
            if inspect.isawaitable(value):
                value = await value
            results[name] = {"ok": True, "value": plain(value)}
        except Exception as exc:
            results[name] = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
    return results


def run_cases(out: TextIO, cases: dict[str, Case], versions: dict[str, str]) -> None:
    """Run every case on one event loop (async cases awaited), then print the JSON document."""
    results = asyncio.run(_run(cases))
    out.write(json.dumps({"versions": versions, "cases": results}) + "\n")
    out.flush()
