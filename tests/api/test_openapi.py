"""/openapi.json describes every route with its request and response schemas; /docs serves the UI."""

from __future__ import annotations

import httpx


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
    import re

    for name in set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text)):
        assert name in components, name


async def test_docs_ui(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert "swagger" in r.text.lower()
