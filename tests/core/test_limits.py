"""Per-request limits: inputs, masks, NUL characters, over-long texts without truncation, the timeout."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from maskserve.core.context import RequestContext
from maskserve.core.engine import RequestPolicy
from maskserve.core.repository import load_engine
from maskserve.errors import BadRequest, RequestTimeout
from maskserve.params import FillMaskParams
from support.engines import engine_for, settings_for
from support.waiting import HANG_S


async def test_too_many_inputs(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, max_inputs=3)
    with pytest.raises(BadRequest, match=r"at most 3 inputs \(--max_inputs\), this one has 4"):
        await engine.fill_mask(["a [MASK]"] * 4, FillMaskParams())
    assert len(await engine.fill_mask(["a [MASK]"] * 3, FillMaskParams())) == 3


async def test_too_many_masks(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, max_masks=4)
    with pytest.raises(BadRequest, match=r"has 10000 \[MASK\] tokens; at most 4 .*--max_masks"):
        await engine.kserve_values(["[MASK] " * 10_000])
    with pytest.raises(BadRequest, match=r"input 1 has 5"):
        await engine.fill_mask(["a [MASK]", "[MASK]" * 5], FillMaskParams())


async def test_nul_character(bert_dir: Path) -> None:
    with pytest.raises(BadRequest, match="NUL character"):
        await engine_for(bert_dir).fill_mask(["a\x00 [MASK]"], FillMaskParams())


async def test_without_truncation_long_inputs_are_rejected_with_their_length(bert_dir: Path) -> None:
    long_text = "[MASK] " + "word " * 200
    strict = engine_for(bert_dir, truncation=False)
    with pytest.raises(BadRequest, match=r"the input is \d+ tokens long .* at most 64 \(--max_length\)"):
        await strict.fill_mask([long_text], FillMaskParams())
    # Short inputs are unaffected, and by default long ones are truncated as KServe does.
    assert await strict.fill_mask(["a [MASK] ."], FillMaskParams())
    assert await engine_for(bert_dir).fill_mask([long_text], FillMaskParams())


async def test_request_timeout_is_a_504_and_drops_the_work(bert_dir: Path) -> None:
    engine = load_engine(settings_for(bert_dir))
    engine.policy = dataclasses.replace(RequestPolicy(), timeout_s=0.2)
    gate = threading.Event()
    inner = engine.backend.mask_logits

    def slow(batch):  # type: ignore[no-untyped-def]
        gate.wait(HANG_S)  # held until the request has timed out, however long that takes here
        return inner(batch)

    engine.backend.mask_logits = slow  # type: ignore[method-assign]
    try:
        with pytest.raises(RequestTimeout, match=r"within 0.2 s \(--request_timeout_s\)"):
            await engine.fill_mask(["a [MASK] ."], FillMaskParams(), RequestContext(use_cache=False))
    finally:
        gate.set()
        await engine.aclose()


async def test_cache_hits_give_identical_answers_and_skip_the_model(bert_dir: Path) -> None:
    engine = load_engine(settings_for(bert_dir, cache_size=16))
    try:
        first, outcome = RequestContext(), RequestContext()
        a = await engine.fill_mask(["one [MASK] .", "two [MASK] ."], FillMaskParams(top_k=3), first)
        batches = engine.batcher.stats.batches
        b = await engine.fill_mask(["two [MASK] .", "one [MASK] ."], FillMaskParams(top_k=3), outcome)
        assert (first.label, outcome.label) == ("miss", "hit")
        assert b == [a[1], a[0]]
        assert engine.batcher.stats.batches == batches
        # Other parameters are another answer; so is bypassing the cache.
        other = RequestContext()
        await engine.fill_mask(["one [MASK] ."], FillMaskParams(top_k=2), other)
        assert other.label == "miss"
        bypass = RequestContext(use_cache=False)
        await engine.fill_mask(["one [MASK] ."], FillMaskParams(top_k=3), bypass)
        assert bypass.label == "bypass"
    finally:
        await engine.aclose()
