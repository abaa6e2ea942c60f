"""The Hugging Face Inference API, fill-mask task."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from maskserve.api.http.deps import hf_engine, unless_disconnected, use_cache
from maskserve.api.http.openapi import ERRORS, json_body
from maskserve.api.http.responses import JSONResponse, with_outcome
from maskserve.core.outcome import RequestOutcome
from maskserve.protocols import hf, schemas

router = APIRouter(tags=["Hugging Face Inference API"])


async def _fill_mask(request: Request, model_id: str | None) -> JSONResponse:
    parsed = hf.parse_hf_request(await request.body(), request.headers.get("content-type"))
    engine = await hf_engine(request, model_id, parsed.wait_for_model)
    outcome = RequestOutcome()
    work = engine.fill_mask(
        parsed.texts, parsed.params, use_cache=use_cache(request, parsed.use_cache), outcome=outcome
    )
    results = await unless_disconnected(request, work)
    return with_outcome(JSONResponse(hf.render_hf_response(results, parsed.unwrap)), outcome)


_FILL_MASK: dict[str, Any] = {
    "response_model": schemas.HFResponseBody,
    "responses": ERRORS,
    "openapi_extra": json_body(schemas.HFRequestBody, "text/plain"),
}


@router.post("/models/{model_id:path}", **_FILL_MASK)
async def fill_mask_by_model(request: Request, model_id: str) -> JSONResponse:
    return await _fill_mask(request, model_id)


@router.post("/", **_FILL_MASK)
async def fill_mask(request: Request) -> JSONResponse:
    return await _fill_mask(request, None)


@router.get("/", response_model=dict[str, str])
async def root() -> dict[str, Any]:
    return {"status": "alive"}
