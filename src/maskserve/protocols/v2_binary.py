"""The binary tensor data extension of V2 REST inference (Triton's ``binary_tensor_data``, also KServe's).

A request or response body may be a JSON header followed by raw tensor data. The
``Inference-Header-Content-Length`` header gives the JSON length; the binary parts follow it in the order
of the tensors that carry ``parameters.binary_data_size`` (their length in bytes). Data is little-endian
and row-major; a BYTES element is a 4-byte little-endian unsigned length and then that many bytes.

A response output is binary when the request asks for it: ``outputs[i].parameters.binary_data`` for that
output, else the top-level ``parameters.binary_data_output``. Pure functions: no web framework.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from maskserve.errors import BadRequest, clip, preview
from maskserve.protocols.common import dumps, type_name
from maskserve.protocols.v2 import (
    InferenceRequest,
    InferenceResponse,
    parse_infer_payload,
    parse_infer_request,
)

__all__ = [
    "HEADER",
    "binary_output_names",
    "encode_binary_response",
    "encode_tensor",
    "parse_request",
    "split_binary_request",
]

HEADER = "Inference-Header-Content-Length"
_SIZE = "binary_data_size"
_LENGTH = struct.Struct("<I")

# Datatype -> its little-endian element layout (BYTES is length-prefixed, handled apart).
RAW_DTYPES = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


def parse_request(body: bytes, header_length: str | None) -> InferenceRequest:
    """The V2 request in ``body``: JSON, or JSON plus binary data when ``header_length`` (the value of
    the ``Inference-Header-Content-Length`` header) is given. Binary output flags are checked up front so
    a bad flag is a 400 before any inference runs."""
    request = (
        parse_infer_request(body) if header_length is None else split_binary_request(body, header_length)
    )
    binary_output_names(request, [])  # checks the flags
    return request


# --- requests ---


def _header_length(value: str, body_size: int) -> int:
    text = value.strip()
    # At most 18 digits: no body is that large, and int() refuses strings of thousands of digits.
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
        raise BadRequest(
            f"the {HEADER} header must be the byte length of the JSON part of the body "
            f"(a non-negative integer), got {preview(value)}"
        )
    length = int(text)
    if length < 0:
        raise BadRequest(f"the {HEADER} header must not be negative, got {length}")
    if length > body_size:
        raise BadRequest(
            f"the {HEADER} header says the JSON part is {length} bytes but the whole body is only "
            f"{body_size} bytes"
        )
    return length


def _load_header(raw: bytes) -> Any:
    if not raw.strip():
        raise BadRequest(
            f"the JSON part of the body is empty; {HEADER} must be the byte length of the JSON request "
            "that starts the body"
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"the first {len(raw)} bytes of the body (per {HEADER}) are not valid JSON: {exc}; "
            "the header must count exactly the bytes of the JSON request"
        ) from exc


def _binary_size(name: str, parameters: dict[str, Any]) -> int | None:
    if _SIZE not in parameters:
        return None
    size = parameters[_SIZE]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadRequest(
            f"input '{name}' parameters.{_SIZE} must be a non-negative integer (its byte length in the "
            f"binary part of the body), got {preview(size)}"
        )
    return size


def split_bytes_elements(raw: bytes, name: str) -> list[bytes]:
    """One BYTES tensor's elements (REST binary data or gRPC raw contents): each a 4-byte little-endian
    length, then that many bytes."""
    elements: list[bytes] = []
    offset = 0
    size = len(raw)
    while offset < size:
        if offset + _LENGTH.size > size:
            raise BadRequest(
                f"the BYTES data of input '{name}' ends inside the 4-byte length prefix of element "
                f"{len(elements)} (only {size - offset} bytes left at offset {offset} of its {size} bytes)"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if length > size - offset:
            raise BadRequest(
                f"element {len(elements)} of input '{name}' has length prefix {length} but only "
                f"{size - offset} bytes remain; each BYTES element must be a 4-byte little-endian length "
                "followed by exactly that many bytes"
            )
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def split_binary_request(body: bytes, header_length: str) -> InferenceRequest:
    """Split a JSON-plus-binary body. Each binary input comes back with ``data`` set to its list of
    ``bytes`` elements (``decode_texts`` then checks the count against the shape and the UTF-8)."""
    length = _header_length(header_length, len(body))
    request = parse_infer_payload(_load_header(body[:length]))
    binary = memoryview(body)[length:]
    sizes: list[int | None] = []
    for tensor in request.inputs:
        name = clip(tensor.name)
        size = _binary_size(name, tensor.parameters or {})
        sizes.append(size)
        if size is None:
            continue
        if tensor.data is not None:
            raise BadRequest(
                f"input '{name}' has both 'data' and parameters.{_SIZE}; send its elements either "
                "as JSON 'data' or as binary data after the JSON, not both"
            )
        if tensor.datatype.upper() != "BYTES":
            raise BadRequest(
                f"input '{name}' is binary {clip(tensor.datatype)} data, but this fill-mask model takes "
                "texts: send them as BYTES (each element a 4-byte little-endian length and then the UTF-8 "
                "bytes)"
            )
    declared = sum(s for s in sizes if s is not None)
    if declared != len(binary):
        problem = "is too short" if declared > len(binary) else f"has {len(binary) - declared} trailing bytes"
        raise BadRequest(
            f"the binary part of the body {problem}: the inputs' parameters.{_SIZE} add up to {declared} "
            f"bytes but {len(binary)} bytes follow the {length}-byte JSON part; check {HEADER} and each "
            f"input's {_SIZE}"
        )
    inputs = []
    offset = 0
    for tensor, size in zip(request.inputs, sizes, strict=True):
        if size is None:
            inputs.append(tensor)
            continue
        elements = split_bytes_elements(bytes(binary[offset : offset + size]), clip(tensor.name))
        offset += size
        inputs.append(tensor.model_copy(update={"data": elements}))
    return request.model_copy(update={"inputs": inputs})


# --- responses ---


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"'{where}' must be true or false, got {type_name(value)} {preview(value)}")
    return value


def binary_output_names(request: InferenceRequest, names: list[str]) -> set[str]:
    """Which of the outputs ``names`` the request wants as binary data: an output's own
    ``parameters.binary_data`` wins over the request's ``parameters.binary_data_output``."""
    default = _flag(
        (request.parameters or {}).get("binary_data_output", False), "parameters.binary_data_output"
    )
    own: dict[str, bool] = {}
    for index, output in enumerate(request.outputs or []):
        parameters = output.parameters or {}
        if "binary_data" in parameters:
            own[output.name] = _flag(parameters["binary_data"], f"outputs[{index}].parameters.binary_data")
    return {name for name in names if own.get(name, default)}


def _flat(data: Any) -> Iterator[Any]:
    """Row-major elements of a (possibly nested) list the data plane built."""
    if isinstance(data, list | tuple):
        for item in data:
            yield from _flat(item)
    elif data is not None:
        yield data


def encode_tensor(datatype: str, data: Any) -> bytes:
    """One tensor's binary form: BYTES elements length-prefixed, numbers as a little-endian array."""
    if datatype.upper() == "BYTES":
        parts: list[bytes] = []
        for element in _flat(data):
            raw = element if isinstance(element, bytes) else str(element).encode("utf-8")
            parts += [_LENGTH.pack(len(raw)), raw]
        return b"".join(parts)
    dtype = RAW_DTYPES.get(datatype.upper())
    if dtype is None:
        raise ValueError(f"datatype {datatype} has no binary form")
    return np.asarray(list(_flat(data)), dtype=dtype).tobytes()


def encode_binary_response(resp: InferenceResponse, request: InferenceRequest) -> tuple[bytes, int] | None:
    """The body (JSON header, then the binary outputs in output order) and the JSON header's length, or
    None when the request wants no output as binary (answer with plain JSON then)."""
    binary = binary_output_names(request, [o.name for o in resp.outputs])
    if not binary:
        return None
    header = resp.model_dump(mode="json")
    parts: list[bytes] = []
    for output, rendered in zip(resp.outputs, header["outputs"], strict=True):
        if output.name not in binary:
            continue
        raw = encode_tensor(output.datatype, output.data)
        parts.append(raw)
        del rendered["data"]
        rendered["parameters"] = {**(rendered["parameters"] or {}), _SIZE: len(raw)}
    head = dumps(header)
    return head + b"".join(parts), len(head)
