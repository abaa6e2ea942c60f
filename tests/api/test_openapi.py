"""/openapi.json describes every route with its request and response schemas; /docs serves the UI."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from maskserve.api.http.app import create_app
from support.engines import engine_for, settings_for
from support.models import mask_of


async def test_every_route_is_documented_with_schemas(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    expected = {
        ("/v1/models", "get"), ("/v1/models/{name}", "get"), ("/v1/models/{name}:predict", "post"),
        ("/v2", "get"), ("/v2/health/live", "get"), ("/v2/health/ready", "get"), ("/v2/models/{name}", "get"),
        ("/v2/models/{name}/ready", "get"), ("/v2/models/{name}/infer", "post"),
        ("/models/{model_id}", "post"), ("/", "post"),
    }  # fmt: skip
    documented = {(path, method) for path, ops in paths.items() for method in ops}
    assert expected <= documented, expected - documented
    components = doc["components"]["schemas"]
    for path, method in expected:
        op = paths[path][method]
        assert "200" in op["responses"], (path, method)
        assert op["responses"]["200"]["content"]["application/json"]["schema"], (path, method)
        if method == "post":
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert body["$ref"].split("/")[-1] in components, (path, body)
            assert op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
                "ErrorBody"
            )
    assert set(components["InferenceRequest"]["required"]) >= {"inputs"}
    assert "inputs" in components["HFRequestBody"]["properties"]
    assert "text/plain" in paths["/"]["post"]["requestBody"]["content"]


async def test_refs_resolve(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    components = doc["components"]["schemas"]
    text = str(doc)
    for name in set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text)):
        assert name in components, name


async def test_docs_ui(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert "swagger" in r.text.lower()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_doc_pages_load_nothing_from_another_host(client: httpx.AsyncClient, page: str) -> None:
    # Offline, a page that fetches its script from a CDN stays blank: every asset must come from here.
    html = (await client.get(page)).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert urls, html
    for url in urls:
        assert not re.match(r"^(https?:)?//", url), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url  # the real bundle, not an empty stand-in
    assert "fonts.googleapis" not in html


async def test_doc_assets_need_no_key(bert_dir: Path) -> None:
    app = create_app(engine_for(bert_dir, model_name="bert"), settings_for(bert_dir, api_key=("k",)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/docs/assets/swagger-ui-bundle.js")).status_code == 200
        assert (await client.get("/models/bert")).status_code == 401


@pytest.mark.parametrize("family", ["bert", "roberta"])
async def test_request_examples_are_answered(family: str, request: pytest.FixtureRequest) -> None:
    # "Try it out" in /docs sends the documented example: it must be a request the served model answers.
    path: Path = request.getfixturevalue(f"{family}_dir")
    app = create_app(engine_for(path, model_name="demo"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        doc = (await client.get("/openapi.json")).json()
        tried = 0
        for route, operations in doc["paths"].items():
            body = operations.get("post", {}).get("requestBody", {}).get("content", {})
            if "example" not in body.get("application/json", {}):
                continue
            operation = operations["post"]
            url = route
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    url = url.replace("{" + parameter["name"] + "}", parameter["example"])
            example = body["application/json"]["example"]
            answer = await client.post(url, json=example)
            assert answer.status_code == 200, (route, answer.text)
            if not route.endswith("score"):  # a score is of a whole text, without a mask
                assert mask_of(path) in str(example)
            tried += 1
    assert tried == 6
