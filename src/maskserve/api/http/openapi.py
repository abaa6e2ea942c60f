"""The OpenAPI document: request bodies are parsed by the protocol modules, so they are declared here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from maskserve.protocols import schemas, v2

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorBody, "description": text}
    for status, text in {
        400: "bad input",
        401: "missing or wrong API key",
        404: "unknown model",
        413: "request too large",
        429: "queue full; retry after Retry-After seconds",
        503: "model not ready",
        504: "timed out",
    }.items()
}


def json_body(model: type[BaseModel], *extra_types: str) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON request body (plus other media types as strings)."""
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    }
    for media in extra_types:
        content[media] = {"schema": {"type": "string"}}
    return {"requestBody": {"required": True, "content": content}}


BODY_MODELS: tuple[type[BaseModel], ...] = (
    schemas.HFRequestBody,
    schemas.V1PredictRequest,
    v2.InferenceRequest,
)


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in BODY_MODELS:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = schema
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]
