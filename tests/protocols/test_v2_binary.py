"""The binary tensor data extension: splitting JSON-plus-binary requests and encoding binary responses."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from maskserve.domain import Prediction
from maskserve.errors import BadRequest
from maskserve.protocols import v2, v2_binary
from support.info import model_info

INFO = model_info()
TEXTS = ["The capital of France is [MASK].", "The capital of [MASK] is paris."]


def bytes_tensor(elements: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def binary_input(raw: bytes, shape: list[int], name: str = "input-0", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "shape": shape,
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(raw)},
        **extra,
    }


def body_of(payload: dict[str, Any], *parts: bytes) -> tuple[bytes, str]:
    head = orjson.dumps(payload)
    return head + b"".join(parts), str(len(head))


def split(payload: dict[str, Any], *parts: bytes) -> v2.InferenceRequest:
    return v2_binary.split_binary_request(*body_of(payload, *parts))


def guide_body() -> tuple[bytes, str]:
    raw = bytes_tensor([t.encode() for t in TEXTS])
    return body_of({"id": "7", "inputs": [binary_input(raw, [2])]}, raw)


# --- requests: round trips ---


def test_guide_texts_round_trip() -> None:
    request = v2_binary.split_binary_request(*guide_body())
    assert request.id == "7"
    assert request.inputs[0].data == [t.encode() for t in TEXTS]
    assert request.inputs[0].parameters == {
        "binary_data_size": len(bytes_tensor([t.encode() for t in TEXTS]))
    }
    assert v2.decode_texts(request) == TEXTS


def test_non_ascii_and_empty_elements() -> None:
    elements = ["café [MASK]".encode(), b"", "日本 [MASK]".encode()]
    raw = bytes_tensor(elements)
    request = split({"inputs": [binary_input(raw, [3])]}, raw)
    assert request.inputs[0].data == elements
    assert v2.decode_texts(request) == ["café [MASK]", "", "日本 [MASK]"]


def test_nested_shape_is_checked_against_the_flat_element_count() -> None:
    raw = bytes_tensor([b"a [MASK]", b"b [MASK]"])
    request = split({"inputs": [binary_input(raw, [1, 2])]}, raw)
    assert v2.decode_texts(request) == ["a [MASK]", "b [MASK]"]


def test_binary_parts_follow_the_order_of_the_binary_inputs() -> None:
    first, second = bytes_tensor([b"one"]), bytes_tensor([b"two", b"three"])
    payload = {
        "inputs": [
            binary_input(first, [1], name="a"),
            {"name": "json", "shape": [1], "datatype": "BYTES", "data": ["inline"]},
            binary_input(second, [2], name="b"),
        ]
    }
    request = split(payload, first, second)
    assert [t.data for t in request.inputs] == [[b"one"], ["inline"], [b"two", b"three"]]


def test_zero_size_input_and_header_without_binary_data() -> None:
    request = split({"inputs": [binary_input(b"", [0])]})
    assert request.inputs[0].data == []
    plain = split({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a [MASK]"]}]})
    assert v2.decode_texts(plain) == ["a [MASK]"]


@pytest.mark.parametrize("header", [" {} ", "+{}", "{}"])
def test_header_length_tolerates_spaces_and_plus(header: str) -> None:
    payload = orjson.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}]})
    body = payload + b"\n "  # whitespace after the JSON belongs to the JSON part
    assert v2_binary.split_binary_request(body, header.format(len(body))).inputs[0].data == ["a"]


def test_parse_request_chooses_by_header() -> None:
    body, length = guide_body()
    assert v2.decode_texts(v2_binary.parse_request(body, length)) == TEXTS
    json_body = orjson.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "BYTES", "data": TEXTS}]})
    assert v2_binary.parse_request(json_body, None) == v2.parse_infer_request(json_body)


# --- requests: malformed ---


@pytest.mark.parametrize("header", ["abc", "1.5", "", "0x10", "--3", "4 2", "²", "9" * 5000])
def test_header_length_must_be_an_integer(header: str) -> None:
    body, _ = guide_body()
    with pytest.raises(BadRequest, match="Inference-Header-Content-Length header must be the byte length"):
        v2_binary.split_binary_request(body, header)


def test_a_long_header_length_is_not_echoed_whole() -> None:
    body, _ = guide_body()
    with pytest.raises(BadRequest, match=r"got '9+\.\.\.$") as raised:
        v2_binary.split_binary_request(body, "9" * 5000)
    assert len(str(raised.value)) < 200


def test_header_length_must_not_be_negative() -> None:
    body, _ = guide_body()
    with pytest.raises(BadRequest, match="must not be negative, got -1"):
        v2_binary.split_binary_request(body, "-1")


def test_header_length_larger_than_the_body() -> None:
    body, _ = guide_body()
    with pytest.raises(BadRequest, match=f"JSON part is {len(body) + 1} bytes but the whole body is only"):
        v2_binary.split_binary_request(body, str(len(body) + 1))


def test_header_length_zero_or_cutting_the_json() -> None:
    body, length = guide_body()
    with pytest.raises(BadRequest, match="the JSON part of the body is empty"):
        v2_binary.split_binary_request(body, "0")
    with pytest.raises(BadRequest, match=r"are not valid JSON: .*count exactly the bytes"):
        v2_binary.split_binary_request(body, str(int(length) - 1))
    with pytest.raises(BadRequest, match="are not valid JSON"):
        v2_binary.split_binary_request(body, str(int(length) + 2))


def test_json_part_must_be_an_inference_request() -> None:
    with pytest.raises(BadRequest, match="must be a JSON object"):
        v2_binary.split_binary_request(b"[1, 2]", "6")
    with pytest.raises(BadRequest, match="invalid inference request: 'inputs'"):
        split({"id": "x"})


@pytest.mark.parametrize("size", [-1, "12", 1.5, 12.0, True, None, [12]])
def test_binary_data_size_must_be_a_non_negative_integer(size: object) -> None:
    raw = bytes_tensor([b"a"])
    tensor = binary_input(raw, [1])
    tensor["parameters"]["binary_data_size"] = size
    with pytest.raises(
        BadRequest, match=r"input 'input-0' parameters\.binary_data_size must be a non-negative"
    ):
        split({"inputs": [tensor]}, raw)


def test_binary_part_too_short() -> None:
    raw = bytes_tensor([b"a [MASK]"])
    with pytest.raises(BadRequest, match=r"is too short: .* add up to 12 bytes but 11 bytes follow"):
        split({"inputs": [binary_input(raw, [1])]}, raw[:-1])


def test_binary_part_with_trailing_bytes() -> None:
    raw = bytes_tensor([b"a [MASK]"])
    with pytest.raises(BadRequest, match=r"has 3 trailing bytes: .* add up to 12 bytes but 15 bytes"):
        split({"inputs": [binary_input(raw, [1])]}, raw, b"xyz")


def test_binary_bytes_without_any_binary_input() -> None:
    payload = {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}
    with pytest.raises(BadRequest, match=r"has 4 trailing bytes: .* add up to 0 bytes"):
        split(payload, b"abcd")


def test_element_length_prefix_running_past_the_tensor() -> None:
    raw = bytes_tensor([b"a [MASK]"])
    # Declare a 100-byte element in the second tensor; its bytes belong to nothing.
    bad = struct.pack("<I", 100) + b"short"
    payload = {"inputs": [binary_input(bad, [1], name="b"), binary_input(raw, [1], name="c")]}
    with pytest.raises(BadRequest, match="element 0 of input 'b' has length prefix 100 but only 5 bytes"):
        split(payload, bad, raw)


def test_element_length_prefix_cut_short() -> None:
    raw = bytes_tensor([b"a [MASK]"]) + b"\x01\x00"
    with pytest.raises(BadRequest, match="ends inside the 4-byte length prefix of element 1"):
        split({"inputs": [binary_input(raw, [2])]}, raw)


def test_input_with_data_and_binary_data_size() -> None:
    raw = bytes_tensor([b"a [MASK]"])
    with pytest.raises(BadRequest, match=r"has both 'data' and parameters\.binary_data_size"):
        split({"inputs": [binary_input(raw, [1], data=["a [MASK]"])]}, raw)


def test_non_bytes_binary_input() -> None:
    raw = np.arange(4, dtype="<f4").tobytes()
    tensor = {**binary_input(raw, [4]), "datatype": "FP32"}
    with pytest.raises(BadRequest, match="binary FP32 data, but this fill-mask model takes texts: send them"):
        split({"inputs": [tensor]}, raw)


def test_element_count_must_match_the_shape() -> None:
    raw = bytes_tensor([b"a [MASK]"])
    request = split({"inputs": [binary_input(raw, [2])]}, raw)
    with pytest.raises(BadRequest, match=r"has shape \[2\] \(2 elements\) but 1 data elements"):
        v2.decode_texts(request)


def test_invalid_utf8() -> None:
    raw = bytes_tensor([b"ok [MASK]", b"\xff\xfe [MASK]"])
    request = split({"inputs": [binary_input(raw, [2])]}, raw)
    with pytest.raises(BadRequest, match="input 'input-0' element 1 is not valid UTF-8"):
        v2.decode_texts(request)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (
            {"parameters": {"binary_data_output": "true"}},
            "'parameters.binary_data_output' must be true or false",
        ),
        ({"outputs": [{"name": "output-0", "parameters": {"binary_data": 1}}]}, r"'outputs\[0\].parameters"),
    ],
)
def test_parse_request_rejects_non_boolean_output_flags(payload: dict[str, Any], where: str) -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}], **payload}
    )
    with pytest.raises(BadRequest, match=where):
        v2_binary.parse_request(body, None)
    with pytest.raises(BadRequest, match=where):
        v2_binary.parse_request(body, str(len(body)))


# --- responses ---


def _pred(token: int) -> Prediction:
    return Prediction(score=token / 10 + 0.01, token=token, token_str=f"tök{token}", sequence=f"s{token}")


def _request(**extra: Any) -> v2.InferenceRequest:
    return v2.parse_infer_payload(
        {"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": TEXTS}], **extra}
    )


def _topk_response(request: v2.InferenceRequest) -> v2.InferenceResponse:
    results = [[[_pred(1), _pred(2), _pred(3)]], [[_pred(4), _pred(5), _pred(6)]]]
    return v2.render_topk(INFO, request, results, ["token_str", "score", "token"])


def _decode(body: bytes, json_length: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON header and each binary output's bytes, read the way a client would."""
    header = orjson.loads(body[:json_length])
    parts: dict[str, bytes] = {}
    offset = json_length
    for output in header["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            parts[output["name"]] = body[offset : offset + size]
            offset += size
    assert offset == len(body)
    return header, parts


def test_no_binary_output_means_plain_json() -> None:
    for request in (_request(), _request(parameters={"binary_data_output": False})):
        resp = v2.render_kserve_values(INFO, request, ["paris", "france"])
        assert v2_binary.encode_binary_response(resp, request) is None


def test_binary_data_output_makes_every_output_binary() -> None:
    request = _request(parameters={"binary_data_output": True})
    resp = v2.render_kserve_values(INFO, request, ["paris", "fränce"])
    encoded = v2_binary.encode_binary_response(resp, request)
    assert encoded is not None
    body, json_length = encoded
    header, parts = _decode(body, json_length)
    expected = resp.model_dump(mode="json")
    output = expected["outputs"][0]
    del output["data"]
    output["parameters"] = {"binary_data_size": len(parts["output-0"])}
    assert header == expected
    assert parts["output-0"] == bytes_tensor([b"paris", "fränce".encode()])


def test_topk_outputs_encode_little_endian_and_in_output_order() -> None:
    request = _request(parameters={"binary_data_output": True, "top_k": 3})
    resp = _topk_response(request)
    encoded = v2_binary.encode_binary_response(resp, request)
    assert encoded is not None
    header, parts = _decode(*encoded)
    assert [o["name"] for o in header["outputs"]] == ["token_str", "score", "token"]
    assert all("data" not in o for o in header["outputs"])
    assert [o["shape"] for o in header["outputs"]] == [[2, 3]] * 3
    by_name = {o.name: o.data for o in resp.outputs}
    assert parts["token_str"] == bytes_tensor([s.encode() for s in by_name["token_str"]])
    assert np.frombuffer(parts["score"], dtype="<f4").tolist() == pytest.approx(by_name["score"])
    assert np.frombuffer(parts["token"], dtype="<i8").tolist() == by_name["token"]
    assert len(parts["score"]) == 6 * 4
    assert len(parts["token"]) == 6 * 8


def test_per_output_flag_overrides_the_top_level_flag() -> None:
    outputs = [
        {"name": "token_str", "parameters": {"binary_data": True}},
        {"name": "score"},
        {"name": "token", "parameters": {"binary_data": False}},
    ]
    request = _request(parameters={"binary_data_output": True}, outputs=outputs)
    encoded = v2_binary.encode_binary_response(_topk_response(request), request)
    assert encoded is not None
    header, parts = _decode(*encoded)
    assert set(parts) == {"token_str", "score"}
    token = header["outputs"][2]
    assert token["data"] == [1, 2, 3, 4, 5, 6]
    assert token["parameters"] is None


def test_per_output_flag_without_the_top_level_flag() -> None:
    outputs = [
        {"name": "token_str"},
        {"name": "score", "parameters": {"binary_data": True}},
        {"name": "token"},
    ]
    for parameters in (None, {"binary_data_output": False}):
        request = _request(parameters=parameters, outputs=outputs)
        encoded = v2_binary.encode_binary_response(_topk_response(request), request)
        assert encoded is not None
        header, parts = _decode(*encoded)
        assert set(parts) == {"score"}
        assert header["outputs"][0]["data"] == ["tök1", "tök2", "tök3", "tök4", "tök5", "tök6"]
    off = _request(outputs=[{"name": "score", "parameters": {"binary_data": False}}])
    assert v2_binary.encode_binary_response(_topk_response(off), off) is None


def test_output_parameters_are_kept_next_to_binary_data_size() -> None:
    request = _request(parameters={"binary_data_output": True})
    resp = v2.render_kserve_values(INFO, request, ["paris"])
    resp.outputs[0].parameters = {"content_type": "str"}
    encoded = v2_binary.encode_binary_response(resp, request)
    assert encoded is not None
    header, _ = _decode(*encoded)
    assert header["outputs"][0]["parameters"] == {"content_type": "str", "binary_data_size": 9}


def test_encode_tensor() -> None:
    assert v2_binary.encode_tensor("BYTES", [["a", "bc"], [b"\x00"]]) == bytes_tensor([b"a", b"bc", b"\x00"])
    assert v2_binary.encode_tensor("bytes", []) == b""
    assert v2_binary.encode_tensor("FP32", [[1.5, -2.0]]) == struct.pack("<2f", 1.5, -2.0)
    assert v2_binary.encode_tensor("INT64", [1, -2]) == struct.pack("<2q", 1, -2)
    assert v2_binary.encode_tensor("BOOL", [True, False]) == b"\x01\x00"
    with pytest.raises(ValueError, match="BF16 has no binary form"):
        v2_binary.encode_tensor("BF16", [1.0])


def test_tritonclient_reads_our_bytes_tensors() -> None:
    utils = pytest.importorskip("tritonclient.utils")
    elements = [t.encode() for t in TEXTS] + ["日本".encode(), b""]
    ours = v2_binary.encode_tensor("BYTES", [e.decode() for e in elements])
    assert [bytes(e) for e in utils.deserialize_bytes_tensor(ours)] == elements
    theirs = utils.serialize_byte_tensor(np.array(elements, dtype=np.object_)).item()
    request = split({"inputs": [binary_input(theirs, [4])]}, theirs)
    assert request.inputs[0].data == elements
