"""Open Inference Protocol messages <-> maskserve's V2 models. Pure functions: no server, no engine.

Tensor data arrives either typed (``InferInputTensor.contents``, one repeated field per datatype) or raw
(``ModelInferRequest.raw_input_contents``, one bytes entry per input: the tensor flattened row-major,
little-endian; a BYTES element is a 4-byte little-endian length and then that many bytes). A response
answers in the form the request used: raw in, raw out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.errors import BadRequest, clip
from maskserve.protocols import v2
from maskserve.protocols.v2_binary import RAW_DTYPES, encode_tensor
from maskserve.protocols.v2_binary import split_bytes_elements as decode_bytes_tensor

__all__ = [
    "decode_bytes_tensor",
    "encode_bytes_tensor",
    "infer_request_from_proto",
    "infer_response_to_proto",
    "model_metadata_to_proto",
    "parameters_from_proto",
    "parameters_to_proto",
    "server_metadata_to_proto",
]

# Datatype -> the InferTensorContents field that carries it (FP16 and BF16 travel raw only).
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


_LENGTH = struct.Struct("<I")
_INT64_MAX = 2**63 - 1


# --- parameters ---


def parameters_from_proto(params: Mapping[str, pb.InferParameter]) -> dict[str, Any] | None:
    """A ``map<string, InferParameter>`` as a plain dict; None when empty (as REST's absent field)."""
    if not params:
        return None
    out: dict[str, Any] = {}
    for key, param in params.items():
        choice = param.WhichOneof("parameter_choice")
        out[key] = getattr(param, choice) if choice is not None else None
    return out


def _parameter(key: str, value: Any) -> pb.InferParameter:
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return (
            pb.InferParameter(int64_param=value)
            if value <= _INT64_MAX
            else pb.InferParameter(uint64_param=value)
        )
    if isinstance(value, float):
        return pb.InferParameter(double_param=value)
    if isinstance(value, str):
        return pb.InferParameter(string_param=value)
    raise TypeError(f"parameter {key!r} has type {type(value).__name__}; gRPC parameters are scalars")


def parameters_to_proto(params: Mapping[str, Any] | None) -> dict[str, pb.InferParameter]:
    return {key: _parameter(key, value) for key, value in (params or {}).items()}


# --- BYTES tensors in raw form ---


def encode_bytes_tensor(elements: Iterable[str | bytes]) -> bytes:
    """The raw form of a BYTES tensor: each element UTF-8 encoded and prefixed by its 4-byte length."""
    return encode_tensor("BYTES", list(elements))


def _texts(elements: Sequence[bytes], name: str) -> list[str]:
    texts: list[str] = []
    for index, element in enumerate(elements):
        try:
            texts.append(element.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadRequest(f"input '{name}' element {index} is not valid UTF-8") from exc
    return texts


# --- requests ---


def _raw_data(raw: bytes, name: str, datatype: str) -> list[Any] | None:
    if datatype == "BYTES":
        return _texts(decode_bytes_tensor(raw, name), name)
    dtype = RAW_DTYPES.get(datatype)
    if dtype is None:
        # An unknown datatype: leave the data out and let the data plane reject the datatype, as REST does.
        return None
    if len(raw) % dtype.itemsize:
        raise BadRequest(
            f"raw contents of input '{name}' are {len(raw)} bytes, not a whole number of "
            f"{clip(datatype)} elements ({dtype.itemsize} bytes each)"
        )
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return values


def _typed_data(tensor: pb.ModelInferRequest.InferInputTensor, datatype: str) -> list[Any] | None:
    field = _CONTENTS_FIELD.get(datatype)
    if field is None:
        return None
    values = getattr(tensor.contents, field)
    if datatype == "BYTES":
        return _texts(list(values), clip(tensor.name))
    return list(values)


def infer_request_from_proto(msg: pb.ModelInferRequest) -> v2.InferenceRequest:
    """A ModelInferRequest as the V2 model that REST parses from JSON (the caller resolves ``model_name``)."""
    raw = list(msg.raw_input_contents)
    if raw:
        if len(raw) != len(msg.inputs):
            raise BadRequest(
                f"raw_input_contents has {len(raw)} entries but the request has {len(msg.inputs)} inputs; "
                "send one entry per input, in the order of 'inputs'"
            )
        typed = [clip(t.name) for t in msg.inputs if t.HasField("contents")]
        if typed:
            raise BadRequest(
                f"input '{typed[0]}' sets 'contents' although the request uses raw_input_contents; "
                "use one or the other"
            )
    inputs: list[v2.RequestInput] = []
    for index, tensor in enumerate(msg.inputs):
        datatype = tensor.datatype.upper()
        data = _raw_data(raw[index], clip(tensor.name), datatype) if raw else _typed_data(tensor, datatype)
        inputs.append(
            v2.RequestInput(
                name=tensor.name,
                shape=list(tensor.shape),
                datatype=tensor.datatype,
                parameters=parameters_from_proto(tensor.parameters),
                data=data,
            )
        )
    outputs = [
        v2.RequestOutput(name=o.name, parameters=parameters_from_proto(o.parameters)) for o in msg.outputs
    ]
    return v2.InferenceRequest(
        id=msg.id or None,
        parameters=parameters_from_proto(msg.parameters),
        inputs=inputs,
        outputs=outputs or None,
    )


# --- responses ---


def _flat(data: Any) -> list[Any]:
    """Row-major flattening of a (possibly nested) list; the data plane builds these, so no depth guard."""
    if data is None:
        return []
    flat: list[Any] = []
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    return flat


def _raw_output(output: v2.ResponseOutput, values: list[Any], datatype: str) -> bytes:
    if datatype != "BYTES" and datatype not in RAW_DTYPES:
        raise ValueError(f"output '{output.name}' has datatype {output.datatype}, which has no raw form")
    return encode_tensor(datatype, values)


def _typed_output(output: v2.ResponseOutput, values: list[Any], datatype: str) -> pb.InferTensorContents:
    field = _CONTENTS_FIELD.get(datatype)
    if field is None:
        raise ValueError(
            f"output '{output.name}' has datatype {output.datatype}, which has no typed contents"
        )
    if datatype == "BYTES":
        values = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    contents = pb.InferTensorContents()
    getattr(contents, field).extend(values)
    return contents


def infer_response_to_proto(resp: v2.InferenceResponse, *, raw: bool) -> pb.ModelInferResponse:
    """The V2 response as a ModelInferResponse: tensors in ``raw_output_contents`` when ``raw`` (the request's
    inputs were raw), else in each output's typed ``contents`` (BYTES as UTF-8 ``bytes_contents``)."""
    msg = pb.ModelInferResponse(
        model_name=resp.model_name,
        model_version=resp.model_version or "",
        id=resp.id,
        parameters=parameters_to_proto(resp.parameters),
    )
    for output in resp.outputs:
        datatype = output.datatype.upper()
        values = _flat(output.data)
        tensor = msg.outputs.add(
            name=output.name,
            datatype=output.datatype,
            shape=output.shape,
            parameters=parameters_to_proto(output.parameters),
        )
        if raw:
            msg.raw_output_contents.append(_raw_output(output, values, datatype))
        else:
            tensor.contents.CopyFrom(_typed_output(output, values, datatype))
    return msg


# --- metadata ---


def _tensor_metadata(
    tensors: Sequence[v2.MetadataTensor],
) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [
        pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.datatype, shape=t.shape)
        for t in tensors
    ]


def server_metadata_to_proto(meta: v2.ServerMetadata) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=meta.name, version=meta.version, extensions=meta.extensions)


def model_metadata_to_proto(meta: v2.ModelMetadata) -> pb.ModelMetadataResponse:
    return pb.ModelMetadataResponse(
        name=meta.name,
        versions=meta.versions or [],
        platform=meta.platform,
        inputs=_tensor_metadata(meta.inputs),
        outputs=_tensor_metadata(meta.outputs),
    )
