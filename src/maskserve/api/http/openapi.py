"""The OpenAPI document: request bodies are parsed by the protocol modules, so they are declared here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from maskserve.core.registry import ModelRegistry
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
    schemas.ScoreRequestBody,
    schemas.V1PredictRequest,
    v2.InferenceRequest,
)


# Placeholder mask until the model is loaded (the document is rebuilt once it is).
_DEFAULT_MASK = "[MASK]"


def request_examples(mask: str) -> dict[str, Any]:
    """A request body per route that the served model answers, for "Try it out" in /docs: its own mask
    token, so the example is answered instead of refused for want of a mask."""
    text = f"The capital of France is {mask}."
    paris = "The capital of France is Paris."
    return {
        "/models/{model_id}": {"inputs": text, "parameters": {"top_k": 3}},
        "/": {"inputs": text, "parameters": {"top_k": 3}},
        "/models/{model_id}/score": {"inputs": paris, "parameters": {"words": True}},
        "/score": {"inputs": paris, "parameters": {"metric": "token"}},
        "/v1/models/{name}:predict": {"instances": [text, f"The capital of {mask} is Paris."]},
        "/v2/models/{name}/infer": {
            "inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [text]}]
        },
    }


def _add_examples(doc: dict[str, Any], mask: str, model_name: str) -> None:
    for path, example in request_examples(mask).items():
        operation = doc["paths"].get(path, {}).get("post")
        if operation is None:
            continue
        operation["requestBody"]["content"]["application/json"]["example"] = example
        if "text/plain" in operation["requestBody"]["content"]:
            operation["requestBody"]["content"]["text/plain"]["example"] = example["inputs"]
    for operations in doc["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] in {"name", "model_id"}:
                    parameter["example"] = model_name


def install_openapi(app: FastAPI, registry: ModelRegistry) -> None:
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
        slots = [s for s in registry.slots if s.engine is not None] or registry.slots
        slot = slots[0] if slots else None
        engine = slot.engine if slot is not None else None
        _add_examples(
            doc, engine.info.mask_token if engine else _DEFAULT_MASK, slot.name if slot else "model"
        )
        if engine is not None:  # kept once the examples use the model's own mask token
            app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]
