"""KServe V1: list, readiness and predict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from maskserve.api.http.deps import engine_for, registry_of, slot_for, unless_disconnected, use_cache
from maskserve.api.http.openapi import ERRORS, json_body
from maskserve.api.http.responses import JSONResponse, with_outcome
from maskserve.core.outcome import RequestOutcome
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
    engine = await engine_for(request, name)
    parsed = kserve_v1.parse_v1_request(await request.body())
    cached, outcome = use_cache(request), RequestOutcome()
    if parsed.params is not None:
        work = engine.fill_mask(parsed.texts, parsed.params, use_cache=cached, outcome=outcome)
        body = kserve_v1.render_v1_candidates(await unless_disconnected(request, work))
    else:
        values = engine.kserve_values(parsed.texts, use_cache=cached, outcome=outcome)
        body = kserve_v1.render_v1_values(await unless_disconnected(request, values))
    return with_outcome(JSONResponse(body), outcome)
