"""Transport-neutral handling of an Open Inference Protocol request; REST and gRPC both call this."""

from __future__ import annotations

from maskserve.core.answer_size import AnswerLimit
from maskserve.core.engine import Engine
from maskserve.core.outcome import RequestOutcome
from maskserve.domain import FillMaskParams
from maskserve.protocols import v2


async def v2_infer(
    engine: Engine,
    request: v2.InferenceRequest,
    *,
    use_cache: bool = True,
    outcome: RequestOutcome | None = None,
    answer_limit: AnswerLimit | None = None,
) -> v2.InferenceResponse:
    """The answer, with the request's warnings (a target replaced by its first sub-token, ...) in the
    response parameters as ``warning``, one line each, where V2 clients over REST and gRPC can read them."""
    outcome = outcome if outcome is not None else RequestOutcome()
    texts = v2.decode_texts(request)
    params = v2.request_params(request)
    topk = v2.requested_topk(request)
    if topk is not None or params is not None:
        results = await engine.fill_mask(
            texts, params or FillMaskParams(), use_cache=use_cache, outcome=outcome, answer_limit=answer_limit
        )
        if topk is not None:
            response = v2.render_topk(engine.info, request, results, topk)
        else:
            response = v2.render_candidates_json(engine.info, request, results)
    else:
        values = await engine.kserve_values(
            texts, use_cache=use_cache, outcome=outcome, answer_limit=answer_limit
        )
        response = v2.render_kserve_values(engine.info, request, values)
    if outcome.warnings:
        response.parameters = {**(response.parameters or {}), "warning": "\n".join(outcome.warnings)}
    return response
