"""Our answers equal ``transformers.pipeline("fill-mask")`` on the same model."""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from maskserve.core.context import RequestContext
from maskserve.params import FillMaskParams
from maskserve.protocols.hf import render_hf_response
from support.engines import engine_for
from support.models import mask_of


@cache
def _pipeline(path: str) -> Any:
    from transformers import pipeline

    return pipeline("fill-mask", model=path)


def assert_same(ours: Any, theirs: Any) -> None:
    """Same nesting, tokens and strings; scores within 1e-5."""
    assert type(ours) is type(theirs)
    if isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_same(a, b)
        return
    assert ours["token"] == theirs["token"]
    assert ours["token_str"] == theirs["token_str"]
    assert ours["sequence"] == theirs["sequence"]
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)


async def _ours(path: Path, inputs: str | list[str], **params: Any) -> Any:
    texts = [inputs] if isinstance(inputs, str) else inputs
    targets = params.get("targets")
    if isinstance(targets, str):
        targets = [targets]
    fm = FillMaskParams(top_k=params.get("top_k", 5), targets=tuple(targets) if targets else None)
    results = await engine_for(path).fill_mask(texts, fm)
    return render_hf_response(results, unwrap=len(texts) == 1)


SENTENCES = [
    "the cat sat on the {m} .",
    "{m} is the capital of france .",
    "i would like a cup of {m} , please .",
    "Der Hund {m} im Garten .",
]


@pytest.mark.parametrize("template", SENTENCES)
async def test_single_mask(mlm_dir: tuple[str, Path], template: str) -> None:
    _, path = mlm_dir
    text = template.format(m=mask_of(path))
    assert_same(await _ours(path, text), _pipeline(str(path))(text))


@pytest.mark.parametrize("top_k", [1, 3, 17])
async def test_top_k(mlm_dir: tuple[str, Path], top_k: int) -> None:
    _, path = mlm_dir
    text = f"the dog ran to the {mask_of(path)} very fast ."
    assert_same(await _ours(path, text, top_k=top_k), _pipeline(str(path))(text, top_k=top_k))


async def test_several_masks(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    m = mask_of(path)
    text = f"the {m} sat on the {m} and {m} ."
    ours = await _ours(path, text, top_k=3)
    assert len(ours) == 3
    assert_same(ours, _pipeline(str(path))(text, top_k=3))


async def test_list_of_inputs(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    m = mask_of(path)
    texts = [f"a {m} b .", f"the {m} of the house is {m} .", f"short {m}", f"{m}"]
    assert_same(await _ours(path, texts), _pipeline(str(path))(texts))


async def test_one_element_list_is_unwrapped(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    texts = [f"the {mask_of(path)} is red ."]
    assert_same(await _ours(path, texts), _pipeline(str(path))(texts))


@pytest.mark.parametrize(
    "targets",
    [
        ["the", "cat", "dog"],
        ["cat"],
        "dog",
        ["cat", "cat", "dog"],
        ["unbelievablexyz", "cat"],
        ["Cat", "house"],
    ],
)
async def test_targets(mlm_dir: tuple[str, Path], targets: list[str] | str) -> None:
    _, path = mlm_dir
    text = f"the {mask_of(path)} sat on the mat ."
    for top_k in (1, 5):
        assert_same(
            await _ours(path, text, targets=targets, top_k=top_k),
            _pipeline(str(path))(text, targets=targets, top_k=top_k),
        )


async def test_targets_with_several_masks(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    m = mask_of(path)
    text = f"the {m} sat on the {m} ."
    targets = ["cat", "mat", "dog"]
    assert_same(
        await _ours(path, text, targets=targets, top_k=2),
        _pipeline(str(path))(text, targets=targets, top_k=2),
    )


async def test_truncation(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    engine = engine_for(path)
    text = f"the {mask_of(path)} sat on the mat . " + "and then the dog ran to the house . " * 40
    assert len(engine.encoder.tokenizer(text)["input_ids"]) > engine.info.max_length
    theirs = _pipeline(str(path))(
        text, tokenizer_kwargs={"truncation": True, "max_length": engine.info.max_length}
    )
    assert_same(await _ours(path, text), theirs)


async def test_unicode_and_whitespace(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    text = f"  Ünïcödé  café — {mask_of(path)}  naïve 東京 😀 "
    assert_same(await _ours(path, text), _pipeline(str(path))(text))


async def test_concurrent_requests_over_two_model_workers(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    # Batches of at most two inputs: however fast the machine, the twelve requests need six batches or
    # more, so the answers are assembled from several batches run by the two workers.
    engine = engine_for(path, model_workers=2, max_batch_size=2)
    texts = [t.format(m=mask_of(path)) for t in SENTENCES] * 3
    before = engine.batcher.stats.batches
    answers = await asyncio.gather(
        *(engine.fill_mask([t], FillMaskParams(), RequestContext(use_cache=False)) for t in texts)
    )
    assert engine.batcher.stats.batches - before >= len(texts) // 2
    for text, (ours,) in zip(texts, answers, strict=True):
        assert_same(render_hf_response([ours], unwrap=True), _pipeline(str(path))(text))
