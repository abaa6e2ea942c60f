"""Transport-neutral handling of an Open Inference Protocol request; REST and gRPC both call this."""

from __future__ import annotations

from maskserve.core.engine import Engine
from maskserve.domain import FillMaskParams
from maskserve.protocols import v2


async def v2_infer(engine: Engine, request: v2.InferenceRequest) -> v2.InferenceResponse:
    texts = v2.decode_texts(request)
    params = v2.request_params(request)
    topk = v2.requested_topk(request)
    if topk is not None:
        results = await engine.fill_mask(texts, params or FillMaskParams())
        return v2.render_topk(engine.info, request, results, topk)
    if params is not None:
        return v2.render_candidates_json(engine.info, request, await engine.fill_mask(texts, params))
    return v2.render_kserve_values(engine.info, request, await engine.kserve_values(texts))
