"""The response cache over HTTP: X-Cache tells hit or miss; x-use-cache: false bypasses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from maskserve.api.http.app import create_app
from maskserve.core.repository import load_engine
from support.engines import settings_for


@pytest.fixture
async def client(bert_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    engine = load_engine(settings_for(bert_dir, model_name="bert", cache_size=64))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(engine)), base_url="http://t"
    ) as c:
        yield c
    await engine.aclose()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/models/bert", {"inputs": "the [MASK] sat .", "parameters": {"top_k": 3}}),
        ("/v1/models/bert:predict", {"instances": ["the [MASK] sat ."]}),
        (
            "/v2/models/bert/infer",
            {
                "inputs": [
                    {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["the [MASK] sat ."]}
                ]
            },
        ),
    ],
)
async def test_second_request_is_a_hit_with_the_same_body(
    client: httpx.AsyncClient, path: str, body: dict[str, object]
) -> None:
    first = await client.post(path, json=body)
    second = await client.post(path, json=body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert _answer(first) == _answer(second)
    bypass = await client.post(path, json=body, headers={"x-use-cache": "false"})
    assert bypass.headers["x-cache"] == "bypass"
    assert _answer(bypass) == _answer(first)


def _answer(response: httpx.Response) -> object:
    body = response.json()
    if isinstance(body, dict):
        body.pop("id", None)  # V2 gives every response a fresh id when the request has none
    return body


async def test_body_option_use_cache_false(client: httpx.AsyncClient) -> None:
    body = {"inputs": "one [MASK] more .", "options": {"use_cache": False}}
    assert (await client.post("/", json=body)).headers["x-cache"] == "bypass"
    # The header wins over the body option.
    forced = await client.post("/", json=body, headers={"x-use-cache": "1"})
    assert forced.headers["x-cache"] == "miss"
