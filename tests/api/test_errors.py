"""Every malformed request: a 4xx with {"error": ...}, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

V2 = "/v2/models/bert/infer"
V1 = "/v1/models/bert:predict"
JSON = {"content-type": "application/json"}


def _v2(data: object, shape: object = None, datatype: str = "BYTES") -> dict[str, object]:
    items = data if isinstance(data, list) else [data]
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": shape if shape is not None else [len(items)],
                "datatype": datatype,
                "data": data,
            }
        ]
    }


CASES: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("invalid json v1", V1, b'{"instances": [', JSON, 400, "not valid JSON"),
    ("invalid json v2", V2, b"{nope}", JSON, 400, "not valid JSON"),
    ("invalid json hf", "/models/bert", b'{"inputs": ', JSON, 400, "not valid JSON"),
    ("empty body", V1, b"", JSON, 400, "empty"),
    ("wrong type v1", V1, b'{"instances": "text [MASK]"}', JSON, 400, "must be a list"),
    ("wrong element type", V1, b'{"instances": [42]}', JSON, 400, "must be a string"),
    ("empty list v1", V1, b'{"instances": []}', JSON, 400, "empty list"),
    ("empty list hf", "/", b'{"inputs": []}', JSON, 400, "empty list"),
    (
        "no mask v1",
        V1,
        b'{"instances": ["no mask here"]}',
        JSON,
        400,
        "No mask_token ([MASK]) found on the input",
    ),
    ("no mask hf", "/", b'{"inputs": "plain"}', JSON, 400, "No mask_token ([MASK]) found on the input"),
    ("empty string", "/", b'{"inputs": ""}', JSON, 400, "No mask_token"),
    (
        "mask truncated",
        V1,
        b'{"instances": ["' + b"word " * 200 + b'[MASK]"]}',
        JSON,
        400,
        "cut off by truncation",
    ),
    ("top_k zero", "/", b'{"inputs": "a [MASK]", "parameters": {"top_k": 0}}', JSON, 400, "at least 1"),
    (
        "top_k huge",
        "/",
        b'{"inputs": "a [MASK]", "parameters": {"top_k": 10000000}}',
        JSON,
        400,
        "between 1 and",
    ),
    (
        "top_k string",
        "/",
        b'{"inputs": "a [MASK]", "parameters": {"top_k": "3"}}',
        JSON,
        400,
        "positive integer",
    ),
    (
        "no valid target",
        "/",
        b'{"inputs": "a [MASK]", "parameters": {"targets": ["\\u0000"]}}',
        JSON,
        400,
        "None of the targets",
    ),
    ("unknown model v1", "/v1/models/x:predict", b'{"instances": ["a [MASK]"]}', JSON, 404, "does not exist"),
    ("unknown model v2", "/v2/models/x/infer", b"{}", JSON, 404, "does not exist"),
    (
        "v2 datatype",
        V2,
        b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1.0]}]}',
        JSON,
        400,
        "BYTES",
    ),
    (
        "v2 shape mismatch",
        V2,
        b'{"inputs": [{"name": "a", "shape": [3], "datatype": "BYTES", "data": ["a [MASK]"]}]}',
        JSON,
        400,
        "3 elements",
    ),
    ("v2 missing fields", V2, b'{"inputs": [{"name": "a"}]}', JSON, 400, "invalid inference request"),
    ("v2 no inputs key", V2, b'{"id": "1"}', JSON, 400, "inputs"),
    (
        "v2 unknown output",
        V2,
        b'{"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["a [MASK]"]}],'
        b' "outputs": [{"name": "nope"}]}',
        JSON,
        400,
        "unknown output",
    ),
    ("v2 version", "/v2/models/bert/versions/3/infer", b"{}", JSON, 404, "no version"),
    ("unknown route", "/v3/whatever", b"{}", JSON, 404, "Not Found"),
    ("wrong method", "/v2/health/live", b"{}", JSON, 405, "Method Not Allowed"),
    ("invalid utf-8 raw", "/", b"\xff\xfe[MASK]", {"content-type": "text/plain"}, 400, "UTF-8"),
]


@pytest.mark.parametrize(
    ("name", "url", "body", "headers", "status", "message"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_input_is_a_4xx_and_the_server_keeps_serving(
    client: httpx.AsyncClient,
    name: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    r = await client.post(url, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert message in r.json()["error"]
    good = await client.post(V1, json={"instances": ["the [MASK] sat ."]})
    assert good.status_code == 200


async def test_charset_in_content_type_is_accepted(client: httpx.AsyncClient) -> None:
    for ctype in (
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "text/plain; charset=utf-8",
    ):
        r = await client.post(
            V1, content=b'{"instances": ["the [MASK] sat ."]}', headers={"content-type": ctype}
        )
        assert r.status_code == 200, ctype
