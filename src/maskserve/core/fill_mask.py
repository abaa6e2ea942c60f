"""The fill-mask task: the pipeline's candidates (top_k, targets and the word options of docs/words.md), and
the KServe-shaped answer of the same model (top-1 text, or every token's probability or logit)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from maskserve.core import answer_size, postprocess
from maskserve.core.task import Plan
from maskserve.domain import (
    TASK_FILL_MASK,
    TASK_KSERVE_FILL_MASK,
    InputPredictions,
    KServeValue,
    OutputMode,
)
from maskserve.errors import BadRequest
from maskserve.params import FillMaskParams

if TYPE_CHECKING:
    from maskserve.core.context import RequestContext
    from maskserve.core.engine import Engine


def mask_counts(engine: Engine, texts: Sequence[str]) -> list[int]:
    """Each text's mask count, within --max_inputs and --max_masks."""
    mask = engine.info.mask_token
    engine.check_inputs(texts, "text containing " + mask)
    counts: list[int] = []
    for index, text in enumerate(texts):
        masks = text.count(mask)
        counts.append(masks)
        if masks > engine.policy.max_masks:
            where = f"input {index}" if len(texts) > 1 else "the input"
            raise BadRequest(
                f"{where} has {masks} {mask} tokens; at most {engine.policy.max_masks} per input "
                "are allowed (--max_masks)"
            )
    return counts


class FillMask:
    """Top-k candidates per mask per input, equal to ``pipeline("fill-mask")``."""

    name = TASK_FILL_MASK

    async def plan(
        self, engine: Engine, texts: Sequence[str], params: FillMaskParams, ctx: RequestContext
    ) -> Plan[InputPredictions]:
        masks = mask_counts(engine, texts)
        vocab = engine.info.vocab_size
        if not 1 <= params.top_k <= vocab:
            raise BadRequest(f"top_k must be between 1 and {vocab} (the vocabulary size), got {params.top_k}")
        # Resolve targets before queueing, so a request with no valid target costs no compute. Whole-word
        # targets are resolved per text by the word decoder, never cut to a first sub-token.
        targets = params.targets
        target_ids = None
        if targets is not None and params.target_scoring != "word":
            target_ids, warnings = await engine.off_loop(lambda: engine.encoder.target_ids(targets))
            ctx.warnings.extend(warnings)
        top_k = postprocess.effective_top_k(params.top_k, vocab, target_ids)
        estimate = answer_size.candidates_bytes(texts, masks, top_k, engine.encoder.longest_token)
        answer_size.check(estimate, ctx.answer_limit or engine.policy.answer_limit, len(texts))

        async def compute(todo: Sequence[str]) -> list[InputPredictions]:
            if params.words:
                encoded = await engine.encode(todo)
                with engine.stage("predict"):
                    return await engine.words.run(todo, encoded, params)
            results = await engine.mask_logits(todo)
            with engine.stage("postprocess"):
                return await engine.off_loop(
                    lambda: [
                        postprocess.top_k_predictions(r, params, target_ids, engine.encoder) for r in results
                    ]
                )

        return Plan(compute, key=lambda text: (text, params))


class KServeValues:
    """KServe's fill-mask output per input in the server's output mode: the top-1 text, or token id ->
    probability (or logit) at each mask."""

    name = TASK_KSERVE_FILL_MASK

    async def plan(
        self, engine: Engine, texts: Sequence[str], params: FillMaskParams, ctx: RequestContext
    ) -> Plan[KServeValue]:
        masks = mask_counts(engine, texts)
        mode = engine.output_mode
        if mode is not OutputMode.TOP1:  # a number per vocabulary entry per mask: megabytes per input
            limit = ctx.answer_limit or engine.policy.answer_limit
            estimate = answer_size.distributions_bytes(masks, engine.info.vocab_size, limit.json_in_json)
            answer_size.check(estimate, limit, len(texts))

        async def compute(todo: Sequence[str]) -> list[KServeValue]:
            results = await engine.mask_logits(todo)
            with engine.stage("postprocess"):
                return await engine.off_loop(
                    lambda: [postprocess.kserve_value(r, mode, engine.encoder) for r in results]
                )

        # Probabilities and logits are a float per vocabulary entry per mask (megabytes per answer): caching
        # them would hold a few answers at most, so only the top-1 text is cached.
        return Plan(compute, key=lambda text: (text,), cacheable=mode is OutputMode.TOP1)


FILL_MASK = FillMask()
KSERVE_VALUES = KServeValues()
