"""KServe V1: list, readiness and predict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from maskserve.api.http.deps import engine_for, engine_of
from maskserve.api.http.responses import JSONResponse
from maskserve.protocols import kserve_v1

router = APIRouter(tags=["KServe V1"])


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    return kserve_v1.model_list([engine_of(request).info.name])


@router.get("/v1/models/{name}")
async def model_ready(request: Request, name: str) -> dict[str, Any]:
    return kserve_v1.model_ready(engine_for(request, name).info.name, True)


@router.post("/v1/models/{name}:predict")
async def predict(request: Request, name: str) -> JSONResponse:
    engine = engine_for(request, name)
    parsed = kserve_v1.parse_v1_request(await request.body())
    if parsed.params is not None:
        return JSONResponse(
            kserve_v1.render_v1_candidates(await engine.fill_mask(parsed.texts, parsed.params))
        )
    return JSONResponse(kserve_v1.render_v1_values(await engine.kserve_values(parsed.texts)))
