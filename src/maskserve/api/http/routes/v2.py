"""Open Inference Protocol (V2) over REST."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from maskserve import __version__
from maskserve.api.http.deps import context, kserve_wait, plane_of, registry_of, slot_for, unless_disconnected
from maskserve.api.http.openapi import ERRORS, json_body
from maskserve.api.http.responses import JSONResponse, with_outcome
from maskserve.errors import NotFound
from maskserve.protocols import schemas, v2, v2_binary

router = APIRouter(tags=["Open Inference Protocol (V2)"])


@router.get("/v2", response_model=v2.ServerMetadata)
async def server_metadata() -> v2.ServerMetadata:
    # The binary tensor data extension (Triton's name for it) is served on REST; gRPC has raw contents.
    return v2.server_metadata(__version__, extensions=["binary_tensor_data"])


@router.get("/v2/health/live", response_model=schemas.Live)
async def live() -> dict[str, Any]:
    return {"live": True}


@router.get("/v2/health/ready", response_model=schemas.Ready, responses=ERRORS)
async def ready(request: Request) -> dict[str, Any]:
    # 503 until the models asked for at start can serve (and again while draining), as KServe.
    registry_of(request).require_ready()
    return {"ready": True}


@router.get("/v2/models", response_model=schemas.ModelList)
async def list_models(request: Request) -> dict[str, Any]:
    return {"models": registry_of(request).names}


@router.get("/v2/models/{name}", response_model=v2.ModelMetadata, responses=ERRORS)
async def model_metadata(request: Request, name: str) -> v2.ModelMetadata:
    return v2.model_metadata(slot_for(request, name).engine_or_raise().info)


@router.get("/v2/models/{name}/ready", response_model=schemas.ModelReady, responses=ERRORS)
async def model_ready(request: Request, name: str) -> dict[str, Any]:
    slot = slot_for(request, name)
    slot.require_ready()
    return {"name": slot.name, "ready": True}


@router.post("/v2/models/{name}/versions/{version}/infer", responses=ERRORS)
async def infer_version(name: str, version: str) -> None:
    raise NotFound(f"Model {name} has no version {version}: maskserve serves unversioned models")


@router.post(
    "/v2/models/{name}/infer",
    response_model=v2.InferenceResponse,
    responses=ERRORS,
    openapi_extra=json_body(v2.InferenceRequest, "application/octet-stream"),
)
async def infer(request: Request, name: str) -> Response:
    """JSON, or the binary tensor data extension when ``Inference-Header-Content-Length`` is sent (request)
    or outputs are asked for with ``binary_data`` / ``binary_data_output`` (response)."""
    plane = plane_of(request)
    served = await plane.model(name, kserve_wait(request))
    parsed = v2_binary.parse_request(await request.body(), request.headers.get(v2_binary.HEADER))
    ctx = context(request)
    result = await unless_disconnected(request, plane.v2_infer(served, parsed, ctx))
    binary = v2_binary.encode_binary_response(result, parsed)
    if binary is None:
        return with_outcome(JSONResponse(result), ctx)
    body, json_length = binary
    headers = {v2_binary.HEADER: str(json_length)}
    return with_outcome(Response(body, media_type="application/octet-stream", headers=headers), ctx)
