"""The Hugging Face Inference API: the fill-mask task, and sentence scores beside it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from maskserve.api.http.deps import context, hf_wait, plane_of, unless_disconnected
from maskserve.api.http.openapi import ERRORS, json_body
from maskserve.api.http.responses import JSONResponse, with_outcome
from maskserve.params import FillMaskParams, ScoreParams, TaskParams
from maskserve.protocols import hf, schemas

router = APIRouter(tags=["Hugging Face Inference API"])


async def _answer(request: Request, model_id: str | None, task: type[TaskParams]) -> JSONResponse:
    parsed = hf.parse_hf_request(await request.body(), request.headers.get("content-type"), task)
    plane = plane_of(request)
    served = await plane.model(model_id, hf_wait(request, parsed.wait_for_model))
    ctx = context(request, parsed.use_cache)
    results = await unless_disconnected(request, plane.run(served, parsed.call, ctx))
    if task is ScoreParams:
        body: Any = hf.render_scores(results, parsed.unwrap)
    else:
        body = hf.render_hf_response(results, parsed.unwrap)
    return with_outcome(JSONResponse(body), ctx)


_SCORE: dict[str, Any] = {
    "response_model": schemas.ScoreResponseBody,
    "responses": ERRORS,
    "openapi_extra": json_body(schemas.ScoreRequestBody, "text/plain"),
}
_FILL_MASK: dict[str, Any] = {
    "response_model": schemas.HFResponseBody,
    "responses": ERRORS,
    "openapi_extra": json_body(schemas.HFRequestBody, "text/plain"),
}


# Before the fill-mask route, whose {model_id:path} would take ".../score" as part of the model id.
@router.post("/models/{model_id:path}/score", **_SCORE)
async def score_by_model(request: Request, model_id: str) -> JSONResponse:
    """The pseudo-log-likelihood of each input (docs/scores.md)."""
    return await _answer(request, model_id, ScoreParams)


@router.post("/score", **_SCORE)
async def score(request: Request) -> JSONResponse:
    """The pseudo-log-likelihood of each input, by the default model (docs/scores.md)."""
    return await _answer(request, None, ScoreParams)


@router.post("/models/{model_id:path}", **_FILL_MASK)
async def fill_mask_by_model(request: Request, model_id: str) -> JSONResponse:
    return await _answer(request, model_id, FillMaskParams)


@router.post("/", **_FILL_MASK)
async def fill_mask(request: Request) -> JSONResponse:
    return await _answer(request, None, FillMaskParams)


@router.get("/", response_model=dict[str, str])
async def root() -> dict[str, Any]:
    return {"status": "alive"}
