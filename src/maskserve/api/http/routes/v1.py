"""KServe V1: list, readiness and predict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from maskserve.api.http.deps import engine_for, engine_of, unless_disconnected
from maskserve.api.http.openapi import ERRORS, json_body
from maskserve.api.http.responses import JSONResponse
from maskserve.protocols import kserve_v1, schemas

router = APIRouter(tags=["KServe V1"])


@router.get("/v1/models", response_model=schemas.ModelList)
async def list_models(request: Request) -> dict[str, Any]:
    return kserve_v1.model_list([engine_of(request).info.name])


@router.get("/v1/models/{name}", response_model=schemas.ModelReady, responses=ERRORS)
async def model_ready(request: Request, name: str) -> dict[str, Any]:
    return kserve_v1.model_ready(engine_for(request, name).info.name, True)


@router.post(
    "/v1/models/{name}:predict",
    response_model=schemas.V1PredictResponse,
    responses=ERRORS,
    openapi_extra=json_body(schemas.V1PredictRequest),
)
async def predict(request: Request, name: str) -> JSONResponse:
    engine = engine_for(request, name)
    parsed = kserve_v1.parse_v1_request(await request.body())
    if parsed.params is not None:
        return JSONResponse(
            kserve_v1.render_v1_candidates(
                await unless_disconnected(request, engine.fill_mask(parsed.texts, parsed.params))
            )
        )
    return JSONResponse(
        kserve_v1.render_v1_values(await unless_disconnected(request, engine.kserve_values(parsed.texts)))
    )
