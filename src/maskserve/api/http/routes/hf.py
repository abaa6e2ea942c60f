"""The Hugging Face Inference API, fill-mask task."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from maskserve.api.http.deps import context, hf_wait, plane_of, unless_disconnected
from maskserve.api.http.openapi import ERRORS, json_body
from maskserve.api.http.responses import JSONResponse, with_outcome
from maskserve.protocols import hf, schemas

router = APIRouter(tags=["Hugging Face Inference API"])


async def _fill_mask(request: Request, model_id: str | None) -> JSONResponse:
    parsed = hf.parse_hf_request(await request.body(), request.headers.get("content-type"))
    plane = plane_of(request)
    served = await plane.model(model_id, hf_wait(request, parsed.wait_for_model))
    ctx = context(request, parsed.use_cache)
    results = await unless_disconnected(request, plane.run(served, parsed.call, ctx))
    return with_outcome(JSONResponse(hf.render_hf_response(results, parsed.unwrap)), ctx)


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
