"""KServe V1: list, readiness and predict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from maskserve.api.http.deps import context, kserve_wait, plane_of, registry_of, slot_for, unless_disconnected
from maskserve.api.http.openapi import ERRORS, json_body
from maskserve.api.http.responses import JSONResponse, with_outcome
from maskserve.protocols import kserve_v1, schemas

router = APIRouter(tags=["KServe V1"])


@router.get("/v1/models", response_model=schemas.ModelList)
async def list_models(request: Request) -> dict[str, Any]:
    return kserve_v1.model_list(registry_of(request).names)


@router.get("/v1/models/{name}", response_model=schemas.ModelReady, responses=ERRORS)
async def model_ready(request: Request, name: str) -> dict[str, Any]:
    slot = slot_for(request, name)
    slot.require_ready()  # 503 until this model can serve, as KServe; never starts a load
    return kserve_v1.model_ready(slot.name, True)


@router.post(
    "/v1/models/{name}:predict",
    response_model=schemas.V1PredictResponse,
    responses=ERRORS,
    openapi_extra=json_body(schemas.V1PredictRequest),
)
async def predict(request: Request, name: str) -> JSONResponse:
    plane = plane_of(request)
    served = await plane.model(name, kserve_wait(request))
    parsed = kserve_v1.parse_v1_request(await request.body())
    ctx = context(request)
    results = await unless_disconnected(request, plane.run(served, parsed.call, ctx))
    return with_outcome(JSONResponse(kserve_v1.render_v1(parsed.call, results)), ctx)
