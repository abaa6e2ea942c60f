"""Transport-neutral handling of an Open Inference Protocol request; REST and gRPC both call this."""

from __future__ import annotations

from maskserve.core.cache import CacheOutcome
from maskserve.core.engine import Engine
from maskserve.domain import FillMaskParams
from maskserve.protocols import v2


async def v2_infer(
    engine: Engine,
    request: v2.InferenceRequest,
    *,
    use_cache: bool = True,
    outcome: CacheOutcome | None = None,
) -> v2.InferenceResponse:
    texts = v2.decode_texts(request)
    params = v2.request_params(request)
    topk = v2.requested_topk(request)
    if topk is not None:
        results = await engine.fill_mask(
            texts, params or FillMaskParams(), use_cache=use_cache, outcome=outcome
        )
        return v2.render_topk(engine.info, request, results, topk)
    if params is not None:
        results = await engine.fill_mask(texts, params, use_cache=use_cache, outcome=outcome)
        return v2.render_candidates_json(engine.info, request, results)
    values = await engine.kserve_values(texts, use_cache=use_cache, outcome=outcome)
    return v2.render_kserve_values(engine.info, request, values)
