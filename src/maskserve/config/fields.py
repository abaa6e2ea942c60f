"""What the settings classes share: value types, sizes, flag groups and the field metadata the CLI reads."""

from __future__ import annotations

import re
from typing import Any, Literal

# The engines --backend may name (backends/table.py has one row for each, tests keep the two in step), auto
# (the rule in backends/table.py) and KServe's huggingface, which means auto.
Backend = Literal["auto", "torch", "onnx", "openvino", "huggingface"]
Quantize = Literal["none", "int8"]
Dtype = Literal["auto", "float32", "float16", "bfloat16", "float", "half"]
Device = Literal["auto", "cpu", "cuda"]


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_UNITS.update(
    {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "k": 1024, "m": 1024**2, "g": 1024**3}
)


def parse_bytes(text: str) -> int:
    """``8GiB``, ``500MB``, ``1.5G`` or plain bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"expected a size such as 8GiB, 500MB or 1000000 (bytes), got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


# Flag groups, in the order --help shows them. A command takes the groups it needs: `predict` and `batch` the
# model's (MODEL_GROUPS, or with batching), `serve` all of them.
GROUPS = {
    "model": "the model",
    "tokenize": "tokenization",
    "compute": "compute",
    "batching": "batching",
    "repository": "several models",
    "outputs": "KServe outputs",
    "transport": "transport",
    "access": "access control",
    "limits": "request limits",
    "cache": "response cache",
    "logging": "logging",
    "process": "process",
}
MODEL_GROUPS = ("model", "tokenize", "compute")


def flag(description: str, *aliases: str, group: str, positional: bool = False) -> dict[str, Any]:
    """Metadata the CLI reads to build its parsers from these classes (so no flag is declared twice)."""
    assert group in GROUPS, group
    return {
        "description": description,
        "json_schema_extra": {"aliases": list(aliases), "positional": positional, "group": group},
    }


def comma_list(value: Any) -> Any:
    """A list setting from one string (an environment variable, a flag) is comma-separated."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, list | tuple):
        return tuple(item.strip() for part in value for item in str(part).split(",") if item.strip())
    return value
