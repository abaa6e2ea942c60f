"""The Hugging Face Inference API, fill-mask task."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from maskserve.api.http.deps import engine_for, engine_of
from maskserve.api.http.responses import JSONResponse
from maskserve.core.engine import Engine
from maskserve.protocols import hf

router = APIRouter(tags=["Hugging Face Inference API"])


async def _fill_mask(request: Request, engine: Engine) -> JSONResponse:
    parsed = hf.parse_hf_request(await request.body(), request.headers.get("content-type"))
    results = await engine.fill_mask(parsed.texts, parsed.params)
    return JSONResponse(hf.render_hf_response(results, parsed.unwrap))


@router.post("/models/{model_id:path}")
async def fill_mask_by_model(request: Request, model_id: str) -> JSONResponse:
    return await _fill_mask(request, engine_for(request, model_id))


@router.post("/")
async def fill_mask(request: Request) -> JSONResponse:
    return await _fill_mask(request, engine_of(request))


@router.get("/")
async def root() -> dict[str, Any]:
    return {"status": "alive"}
