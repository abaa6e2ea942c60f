"""V2 REST inference with the binary tensor data extension, through the app.

Do not import tritonclient.grpc or kserve here: their protobuf definitions clash with ours in one process.
"""

from __future__ import annotations

import struct
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from api.test_routes import GUIDE_TEXTS, V2_GUIDE

URL = "/v2/models/bert/infer"
HEADER = "Inference-Header-Content-Length"
TOPK = ("token_str", "score", "token")


def bytes_tensor(elements: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def binary_request(texts: list[str], raw: bytes | None = None, **extra: Any) -> tuple[bytes, dict[str, str]]:
    """The guide request with its texts as binary BYTES data: (body, headers)."""
    raw = bytes_tensor([t.encode() for t in texts]) if raw is None else raw
    tensor = {
        "name": "input-0",
        "shape": [len(texts)],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(raw)},
    }
    head = orjson.dumps({"inputs": [tensor], **extra})
    return head + raw, {HEADER: str(len(head)), "content-type": "application/octet-stream"}


def read_binary(r: httpx.Response) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A binary response as a client reads it: the JSON header, then each binary output's bytes."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    length = int(r.headers[HEADER])
    header = orjson.loads(r.content[:length])
    parts: dict[str, bytes] = {}
    offset = length
    for output in header["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            assert "data" not in output
            parts[output["name"]] = r.content[offset : offset + size]
            offset += size
    assert offset == len(r.content) == int(r.headers["content-length"])
    return header, parts


def decode_bytes(raw: bytes) -> list[str]:
    out: list[str] = []
    offset = 0
    while offset < len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        out.append(raw[offset + 4 : offset + 4 + n].decode())
        offset += 4 + n
    return out


async def json_answer(client: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    r = await client.post(URL, json={**V2_GUIDE, **extra})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert HEADER.lower() not in r.headers
    body: dict[str, Any] = r.json()
    return body


async def test_binary_input_gives_the_json_answer(client: httpx.AsyncClient) -> None:
    expected = await json_answer(client, id="same")
    body, headers = binary_request(GUIDE_TEXTS, id="same")
    r = await client.post(URL, content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == expected
    assert r.json()["outputs"][0]["data"] == expected["outputs"][0]["data"]


@pytest.mark.parametrize(
    "headers",
    [
        {"inference-header-content-length": "{}"},
        {"INFERENCE-HEADER-CONTENT-LENGTH": "{}", "content-type": "application/json"},
        {HEADER: "{}", "content-type": "text/plain"},
    ],
)
async def test_header_name_is_case_insensitive_and_content_type_is_free(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body, good = binary_request(GUIDE_TEXTS)
    length = good[HEADER]
    r = await client.post(URL, content=body, headers={k: v.format(length) for k, v in headers.items()})
    assert r.status_code == 200, r.text
    assert len(r.json()["outputs"][0]["data"]) == 2


async def test_binary_data_output_returns_output_0_as_binary(client: httpx.AsyncClient) -> None:
    expected = await json_answer(client, id="x")
    for body, headers in (
        (orjson.dumps({**V2_GUIDE, "id": "x", "parameters": {"binary_data_output": True}}), {}),
        binary_request(GUIDE_TEXTS, id="x", parameters={"binary_data_output": True}),
    ):
        header, parts = read_binary(await client.post(URL, content=body, headers=headers))
        assert decode_bytes(parts["output-0"]) == expected["outputs"][0]["data"]
        assert header["id"] == "x"
        assert header["model_name"] == "bert"
        assert header["outputs"] == [
            {
                "name": "output-0",
                "shape": [2],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(parts["output-0"])},
            }
        ]


async def test_binary_data_output_false_is_plain_json(client: httpx.AsyncClient) -> None:
    expected = await json_answer(client, id="x")
    got = await json_answer(client, id="x", parameters={"binary_data_output": False})
    assert got == expected


def _topk_request(flags: dict[str, bool | None], **extra: Any) -> dict[str, Any]:
    outputs = [
        {"name": n} if flags.get(n) is None else {"name": n, "parameters": {"binary_data": flags[n]}}
        for n in TOPK
    ]
    return {**V2_GUIDE, "outputs": outputs, "parameters": {"top_k": 3, **extra}}


async def test_per_output_binary_data_on_topk_outputs(client: httpx.AsyncClient) -> None:
    expected = {o["name"]: o for o in (await json_answer(client, **_topk_request({})))["outputs"]}
    r = await client.post(URL, json=_topk_request({"token_str": True, "score": True, "token": True}))
    header, parts = read_binary(r)
    assert [o["name"] for o in header["outputs"]] == list(TOPK)
    assert all(o["shape"] == [2, 3] for o in header["outputs"])
    assert decode_bytes(parts["token_str"]) == expected["token_str"]["data"]
    assert np.frombuffer(parts["score"], dtype="<f4").tolist() == pytest.approx(
        expected["score"]["data"], rel=1e-6
    )
    assert np.frombuffer(parts["token"], dtype="<i8").tolist() == expected["token"]["data"]


async def test_per_output_flag_overrides_binary_data_output(client: httpx.AsyncClient) -> None:
    expected = {o["name"]: o for o in (await json_answer(client, **_topk_request({})))["outputs"]}
    payload = _topk_request({"token_str": False, "score": None, "token": None}, binary_data_output=True)
    header, parts = read_binary(await client.post(URL, json=payload))
    assert set(parts) == {"score", "token"}
    token_str = header["outputs"][0]
    assert token_str["data"] == expected["token_str"]["data"]
    assert np.frombuffer(parts["token"], dtype="<i8").tolist() == expected["token"]["data"]
    only_score = _topk_request({"score": True}, binary_data_output=False)
    header, parts = read_binary(await client.post(URL, json=only_score))
    assert set(parts) == {"score"}
    assert [o.get("data") for o in header["outputs"]] == [
        expected["token_str"]["data"],
        None,
        expected["token"]["data"],
    ]


async def test_tritonclient_reads_our_binary_response(client: httpx.AsyncClient) -> None:
    utils = pytest.importorskip("tritonclient.utils")
    expected = {o["name"]: o for o in (await json_answer(client, **_topk_request({})))["outputs"]}
    # A request serialized by tritonclient's own helper, as tritonclient.http sends it.
    elements = np.array([t.encode() for t in GUIDE_TEXTS], dtype=np.object_)
    raw = utils.serialize_byte_tensor(elements).item()
    outputs = [{"name": n, "parameters": {"binary_data": True}} for n in TOPK]
    body, headers = binary_request(GUIDE_TEXTS, raw=raw, outputs=outputs, parameters={"top_k": 3})
    header, parts = read_binary(await client.post(URL, content=body, headers=headers))
    by_name = {o["name"]: o for o in header["outputs"]}
    strings = utils.deserialize_bytes_tensor(parts["token_str"])
    assert [s.decode() for s in strings] == expected["token_str"]["data"]
    scores = np.frombuffer(parts["score"], dtype=utils.triton_to_np_dtype(by_name["score"]["datatype"]))
    assert by_name["score"]["shape"] == [2, 3]
    assert scores.reshape(2, 3) == pytest.approx(np.reshape(expected["score"]["data"], (2, 3)), rel=1e-6)
    tokens = np.frombuffer(parts["token"], dtype=utils.triton_to_np_dtype(by_name["token"]["datatype"]))
    assert tokens.tolist() == expected["token"]["data"]


def _with_header(length: str) -> tuple[bytes, dict[str, str]]:
    body, headers = binary_request(GUIDE_TEXTS)
    return body, {**headers, HEADER: length}


def _with_size(size: object) -> tuple[bytes, dict[str, str]]:
    raw = bytes_tensor([t.encode() for t in GUIDE_TEXTS])
    tensor = {"name": "input-0", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": size}}
    head = orjson.dumps({"inputs": [tensor]})
    return head + raw, {HEADER: str(len(head))}


def _with_tensor(**changes: Any) -> tuple[bytes, dict[str, str]]:
    raw = bytes_tensor([t.encode() for t in GUIDE_TEXTS])
    tensor = {
        "name": "input-0",
        "shape": [2],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(raw)},
        **changes,
    }
    head = orjson.dumps({"inputs": [tensor]})
    return head + raw, {HEADER: str(len(head))}


def _short() -> tuple[bytes, dict[str, str]]:
    body, headers = binary_request(GUIDE_TEXTS)
    return body[:-1], headers


def _trailing() -> tuple[bytes, dict[str, str]]:
    body, headers = binary_request(GUIDE_TEXTS)
    return body + b"xyz", headers


def _raw(raw: bytes, count: int = 2) -> tuple[bytes, dict[str, str]]:
    return binary_request(["x"] * count, raw=raw)


MALFORMED: dict[str, tuple[tuple[bytes, dict[str, str]], str]] = {
    "header not an integer": (_with_header("twelve"), "header must be the byte length of the JSON part"),
    "header negative": (_with_header("-5"), "header must not be negative"),
    "header past the body": (_with_header("100000"), "but the whole body is only"),
    "header cuts the JSON": (_with_header("10"), "are not valid JSON"),
    "size not an integer": (_with_size("71"), "binary_data_size must be a non-negative integer"),
    "size negative": (_with_size(-1), "binary_data_size must be a non-negative integer"),
    "binary part too short": (_short(), "the binary part of the body is too short"),
    "trailing bytes": (_trailing(), "has 3 trailing bytes"),
    "prefix past the tensor": (_raw(struct.pack("<I", 50) + b"abc"), "has length prefix 50 but only 3 bytes"),
    "prefix cut short": (_raw(bytes_tensor([b"a"]) + b"\x00"), "ends inside the 4-byte length prefix"),
    "data and binary": (_with_tensor(data=GUIDE_TEXTS), "has both 'data' and parameters.binary_data_size"),
    "not BYTES": (_with_tensor(datatype="FP32"), "fill-mask model takes texts: send them as BYTES"),
    "count vs shape": (_raw(bytes_tensor([b"a [MASK]"]), count=2), "(2 elements) but 1 data elements"),
    "invalid UTF-8": (_raw(bytes_tensor([b"a [MASK]", b"\xc3("])), "element 1 is not valid UTF-8"),
    "bad binary flag": (
        binary_request(GUIDE_TEXTS, parameters={"binary_data_output": "yes"}),
        "'parameters.binary_data_output' must be true or false",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_binary_requests_are_400(client: httpx.AsyncClient, case: str) -> None:
    (body, headers), message = MALFORMED[case]
    r = await client.post(URL, content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()
    assert set(error) == {"error"}
    assert message in error["error"]
    good_body, good_headers = binary_request(GUIDE_TEXTS)
    after = await client.post(URL, content=good_body, headers=good_headers)
    assert after.status_code == 200, after.text
    assert len(after.json()["outputs"][0]["data"]) == 2


async def test_without_the_header_binary_data_is_not_read(client: httpx.AsyncClient) -> None:
    body, _ = binary_request(GUIDE_TEXTS)
    r = await client.post(URL, content=body, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["error"]
