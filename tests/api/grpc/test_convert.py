"""Pure conversions between Open Inference Protocol messages and maskserve's V2 models (no server)."""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import descriptor_pb2

from maskserve.api.grpc import convert
from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.errors import BadRequest
from maskserve.protocols import v2
from support.info import model_info

GUIDE_TEXTS = ["The capital of France is [MASK].", "The capital of [MASK] is paris."]
PROTO = Path(__file__).resolve().parents[3] / "src" / "maskserve" / "api" / "grpc" / "grpc_predict_v2.proto"


def raw(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def bytes_request(texts: list[str], *, raw_form: bool = False) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="bert")
    tensor = msg.inputs.add(name="input-0", datatype="BYTES", shape=[len(texts)])
    if raw_form:
        msg.raw_input_contents.append(raw(*(t.encode() for t in texts)))
    else:
        tensor.contents.bytes_contents.extend(t.encode() for t in texts)
    return msg


# --- the wire contract: names and numbers of the Open Inference Protocol ---

EXPECTED_FIELDS: dict[str, dict[str, int]] = {
    "ServerLiveResponse": {"live": 1},
    "ServerReadyResponse": {"ready": 1},
    "ModelReadyRequest": {"name": 1, "version": 2},
    "ModelReadyResponse": {"ready": 1},
    "ServerMetadataResponse": {"name": 1, "version": 2, "extensions": 3},
    "ModelMetadataRequest": {"name": 1, "version": 2},
    "ModelMetadataResponse": {"name": 1, "versions": 2, "platform": 3, "inputs": 4, "outputs": 5},
    "ModelMetadataResponse.TensorMetadata": {"name": 1, "datatype": 2, "shape": 3},
    "ModelInferRequest": {
        "model_name": 1,
        "model_version": 2,
        "id": 3,
        "parameters": 4,
        "inputs": 5,
        "outputs": 6,
        "raw_input_contents": 7,
    },
    "ModelInferRequest.InferInputTensor": {
        "name": 1,
        "datatype": 2,
        "shape": 3,
        "parameters": 4,
        "contents": 5,
    },
    "ModelInferRequest.InferRequestedOutputTensor": {"name": 1, "parameters": 2},
    "ModelInferResponse": {
        "model_name": 1,
        "model_version": 2,
        "id": 3,
        "parameters": 4,
        "outputs": 5,
        "raw_output_contents": 6,
    },
    "ModelInferResponse.InferOutputTensor": {
        "name": 1,
        "datatype": 2,
        "shape": 3,
        "parameters": 4,
        "contents": 5,
    },
    "InferParameter": {
        "bool_param": 1,
        "int64_param": 2,
        "string_param": 3,
        "double_param": 4,
        "uint64_param": 5,
    },
    "InferTensorContents": {
        "bool_contents": 1,
        "int_contents": 2,
        "int64_contents": 3,
        "uint_contents": 4,
        "uint64_contents": 5,
        "fp32_contents": 6,
        "fp64_contents": 7,
        "bytes_contents": 8,
    },
}


@pytest.mark.parametrize("message", sorted(EXPECTED_FIELDS))
def test_field_names_and_numbers(message: str) -> None:
    descriptor = pb.DESCRIPTOR.message_types_by_name[message.split(".", maxsplit=1)[0]]
    for nested in message.split(".")[1:]:
        descriptor = descriptor.nested_types_by_name[nested]
    assert descriptor.full_name == f"inference.{message}"
    assert {f.name: f.number for f in descriptor.fields} == EXPECTED_FIELDS[message]


def test_service_methods() -> None:
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    assert {m.name: (m.input_type.name, m.output_type.name) for m in service.methods} == {
        "ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
        "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
        "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
        "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
        "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
        "ModelInfer": ("ModelInferRequest", "ModelInferResponse"),
    }


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools is not installed")
def test_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    """The committed stubs were generated from the committed .proto (run scripts/gen_grpc.sh if not)."""
    out = tmp_path / "set.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-Imaskserve/api/grpc/_generated={PROTO.parent}",
            f"--descriptor_set_out={out}",
            str(PROTO),
        ],
        check=True,
        timeout=120,
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _drop_json_names(fresh.message_type)  # --descriptor_set_out adds them; the embedded descriptor has none
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert fresh == committed


def _drop_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _drop_json_names(message.nested_type)


# --- parameters ---


def test_parameters_from_proto() -> None:
    msg = pb.ModelInferRequest()
    msg.parameters["b"].bool_param = True
    msg.parameters["i"].int64_param = -3
    msg.parameters["s"].string_param = "cat"
    msg.parameters["d"].double_param = 0.5
    msg.parameters["u"].uint64_param = 2**64 - 1
    msg.parameters["unset"].Clear()
    assert convert.parameters_from_proto(msg.parameters) == {
        "b": True,
        "i": -3,
        "s": "cat",
        "d": 0.5,
        "u": 2**64 - 1,
        "unset": None,
    }
    assert convert.parameters_from_proto(pb.ModelInferRequest().parameters) is None


def test_parameters_to_proto() -> None:
    params = convert.parameters_to_proto({"b": False, "i": 3, "big": 2**63, "d": 1.5, "s": "x"})
    assert {k: v.WhichOneof("parameter_choice") for k, v in params.items()} == {
        "b": "bool_param",
        "i": "int64_param",
        "big": "uint64_param",
        "d": "double_param",
        "s": "string_param",
    }
    assert params["big"].uint64_param == 2**63
    assert convert.parameters_to_proto(None) == {}
    with pytest.raises(TypeError, match="scalars"):
        convert.parameters_to_proto({"targets": ["a", "b"]})


# --- raw BYTES ---


def test_bytes_tensor_round_trip() -> None:
    texts = ["a [MASK] .", "", "ünïcode ✓"]
    encoded = convert.encode_bytes_tensor(texts)
    assert encoded == raw(*(t.encode() for t in texts))
    assert convert.decode_bytes_tensor(encoded, "x") == [t.encode() for t in texts]
    assert convert.decode_bytes_tensor(b"", "x") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (struct.pack("<I", 10) + b"short", "has length prefix 10 but only 5 bytes remain"),
        (raw(b"ok") + b"\x01\x00", "inside the 4-byte length prefix of element 1"),
        (b"\x01", "inside the 4-byte length prefix of element 0"),
    ],
)
def test_bad_raw_bytes(data: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        convert.decode_bytes_tensor(data, "input-0")


# --- requests ---


def test_guide_request_equals_the_rest_parse() -> None:
    rest = v2.parse_infer_payload(
        {"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": GUIDE_TEXTS}]}
    )
    for raw_form in (False, True):
        assert convert.infer_request_from_proto(bytes_request(GUIDE_TEXTS, raw_form=raw_form)) == rest


def test_request_fields() -> None:
    msg = bytes_request(GUIDE_TEXTS)
    msg.id = "r1"
    msg.parameters["top_k"].int64_param = 3
    msg.inputs[0].parameters["content_type"].string_param = "str"
    msg.outputs.add(name="token_str")
    msg.outputs.add(name="score").parameters["binary_data"].bool_param = True
    request = convert.infer_request_from_proto(msg)
    assert request.id == "r1"
    assert request.parameters == {"top_k": 3}
    assert request.inputs[0].parameters == {"content_type": "str"}
    assert request.outputs == [
        v2.RequestOutput(name="token_str"),
        v2.RequestOutput(name="score", parameters={"binary_data": True}),
    ]
    assert v2.decode_texts(request) == GUIDE_TEXTS
    assert v2.requested_topk(request) == ["token_str", "score"]


def test_nested_shape_is_flat_data() -> None:
    msg = bytes_request(["a [MASK]", "b [MASK]", "c [MASK]", "d [MASK]"], raw_form=True)
    msg.inputs[0].shape[:] = [2, 2]
    request = convert.infer_request_from_proto(msg)
    assert request.inputs[0].shape == [2, 2]
    assert v2.decode_texts(request) == ["a [MASK]", "b [MASK]", "c [MASK]", "d [MASK]"]


@pytest.mark.parametrize("raw_form", [False, True])
def test_invalid_utf8_is_a_bad_request(raw_form: bool) -> None:
    msg = pb.ModelInferRequest(model_name="bert")
    tensor = msg.inputs.add(name="input-0", datatype="BYTES", shape=[2])
    if raw_form:
        msg.raw_input_contents.append(raw(b"fine", b"\xff\xfe"))
    else:
        tensor.contents.bytes_contents.extend([b"fine", b"\xff\xfe"])
    with pytest.raises(BadRequest, match="input 'input-0' element 1 is not valid UTF-8"):
        convert.infer_request_from_proto(msg)


def test_raw_entries_must_match_inputs() -> None:
    msg = bytes_request(GUIDE_TEXTS, raw_form=True)
    msg.raw_input_contents.append(raw(b"extra"))
    with pytest.raises(BadRequest, match="raw_input_contents has 2 entries but the request has 1 inputs"):
        convert.infer_request_from_proto(msg)


def test_raw_and_typed_contents_do_not_mix() -> None:
    msg = bytes_request(GUIDE_TEXTS, raw_form=True)
    msg.inputs[0].contents.bytes_contents.append(b"also typed")
    with pytest.raises(BadRequest, match="use one or the other"):
        convert.infer_request_from_proto(msg)


def test_numeric_inputs_pass_through_for_the_data_plane_to_reject() -> None:
    typed = pb.ModelInferRequest()
    typed.inputs.add(name="x", datatype="FP32", shape=[2]).contents.fp32_contents.extend([1.5, 2.0])
    request = convert.infer_request_from_proto(typed)
    assert (request.inputs[0].datatype, request.inputs[0].data) == ("FP32", [1.5, 2.0])
    with pytest.raises(BadRequest, match="has datatype FP32; texts must be sent as BYTES"):
        v2.decode_texts(request)

    as_raw = pb.ModelInferRequest(raw_input_contents=[np.array([1, -2], dtype="<i8").tobytes()])
    as_raw.inputs.add(name="x", datatype="INT64", shape=[2])
    assert convert.infer_request_from_proto(as_raw).inputs[0].data == [1, -2]

    ragged = pb.ModelInferRequest(raw_input_contents=[b"\x00" * 6])
    ragged.inputs.add(name="x", datatype="FP32", shape=[2])
    with pytest.raises(BadRequest, match="6 bytes, not a whole number of FP32 elements"):
        convert.infer_request_from_proto(ragged)


def test_empty_optional_fields_are_absent() -> None:
    request = convert.infer_request_from_proto(bytes_request(GUIDE_TEXTS))
    assert (request.id, request.parameters, request.outputs, request.inputs[0].parameters) == (
        None,
        None,
        None,
        None,
    )


# --- responses ---


def topk_response(**extra: Any) -> v2.InferenceResponse:
    return v2.InferenceResponse(
        model_name="bert",
        id="r1",
        outputs=[
            v2.ResponseOutput(
                name="token_str", shape=[2, 2], datatype="BYTES", data=["paris", "é", "x", "y"]
            ),
            v2.ResponseOutput(name="score", shape=[2, 2], datatype="FP32", data=[0.5, 0.25, 0.125, 0.1]),
            v2.ResponseOutput(name="token", shape=[2, 2], datatype="INT64", data=[[1, 2], [3, 4]]),
        ],
        **extra,
    )


def test_response_typed_contents() -> None:
    msg = convert.infer_response_to_proto(topk_response(parameters={"note": "x"}), raw=False)
    assert (msg.model_name, msg.model_version, msg.id) == ("bert", "", "r1")
    assert msg.parameters["note"].string_param == "x"
    assert list(msg.raw_output_contents) == []
    token_str, score, token = msg.outputs
    assert (token_str.name, token_str.datatype, list(token_str.shape)) == ("token_str", "BYTES", [2, 2])
    assert list(token_str.contents.bytes_contents) == [b"paris", "é".encode(), b"x", b"y"]
    assert list(score.contents.fp32_contents) == pytest.approx([0.5, 0.25, 0.125, 0.1])
    assert list(token.contents.int64_contents) == [1, 2, 3, 4]


def test_response_raw_contents() -> None:
    msg = convert.infer_response_to_proto(topk_response(model_version="7"), raw=True)
    assert msg.model_version == "7"
    assert not any(o.HasField("contents") for o in msg.outputs)
    token_str, score, token = msg.raw_output_contents
    assert token_str == raw(b"paris", "é".encode(), b"x", b"y")
    assert np.frombuffer(score, dtype="<f4").tolist() == pytest.approx([0.5, 0.25, 0.125, 0.1])
    assert np.frombuffer(token, dtype="<i8").tolist() == [1, 2, 3, 4]


def test_kserve_output_round_trips_through_the_wire_format() -> None:
    response = v2.InferenceResponse(
        model_name="bert",
        id="r2",
        outputs=[v2.ResponseOutput(name="output-0", shape=[2], datatype="BYTES", data=["paris", "france"])],
    )
    for raw_form in (False, True):
        msg = pb.ModelInferResponse.FromString(
            convert.infer_response_to_proto(response, raw=raw_form).SerializeToString()
        )
        data = (
            convert.decode_bytes_tensor(msg.raw_output_contents[0], "output-0")
            if raw_form
            else list(msg.outputs[0].contents.bytes_contents)
        )
        assert [d.decode() for d in data] == ["paris", "france"]


# --- metadata ---


def test_server_metadata_to_proto() -> None:
    msg = convert.server_metadata_to_proto(v2.server_metadata("1.2.3", extensions=[]))
    assert (msg.name, msg.version, list(msg.extensions)) == ("maskserve", "1.2.3", [])


def test_model_metadata_to_proto() -> None:
    info = model_info(vocab_size=100)
    meta = v2.model_metadata(info)
    msg = convert.model_metadata_to_proto(meta)
    assert (msg.name, list(msg.versions), msg.platform) == ("bert", [], "pytorch_transformers")
    assert [(t.name, t.datatype, list(t.shape)) for t in msg.inputs] == [("input-0", "BYTES", [-1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in msg.outputs] == [
        (t.name, t.datatype, t.shape) for t in meta.outputs
    ]


@pytest.mark.parametrize("raw_form", [False, True])
def test_a_long_input_name_is_not_echoed_whole(raw_form: bool) -> None:
    msg = pb.ModelInferRequest(model_name="bert")
    tensor = msg.inputs.add(name="n" * 100_000, datatype="BYTES", shape=[1])
    if raw_form:
        msg.raw_input_contents.append(raw(b"\xff\xfe"))
    else:
        tensor.contents.bytes_contents.append(b"\xff\xfe")
    with pytest.raises(BadRequest, match="not valid UTF-8") as raised:
        convert.infer_request_from_proto(msg)
    assert len(str(raised.value)) < 200
