"""The word algorithms equal a direct computation with plain transformers forward passes (the whole
model, float32, torch) to 1e-5, on every tokenizer family; their passes go through the batcher one step at a
time."""

from __future__ import annotations

import asyncio
import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from maskserve.core.context import RequestContext
from maskserve.domain import JointPrediction, Prediction
from maskserve.errors import BadRequest
from maskserve.params import FillMaskParams
from support.engines import engine_for
from support.models import mask_of

# Markers that begin (or, for WordPiece, continue) a word, as docs/words.md defines them.
MARKERS = {"bert": "##", "roberta": "\u0120", "xlmr": "\u2581"}


@cache
def _reference(path: str) -> tuple[Any, Any]:
    model = AutoModelForMaskedLM.from_pretrained(path).eval()
    return model, AutoTokenizer.from_pretrained(path)


def _probs(path: Path, ids: list[int], position: int) -> torch.Tensor:
    """The model's softmax over the vocabulary at ``position``, one plain forward pass."""
    model, _ = _reference(str(path))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, position]
    return logits.softmax(dim=-1)


def _decode(path: Path, ids: list[int]) -> str:
    _, tok = _reference(str(path))
    return str(tok.decode(ids, skip_special_tokens=True))


def _beam(
    path: Path, ids: list[int], positions: list[int], width: int, allowed: list[torch.Tensor | None]
) -> list[tuple[list[int], float]]:
    """Beam search from left to right over ``positions``: the reference for both whole_word and joint."""
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    for step, position in enumerate(positions):
        grown = []
        for tokens, logprob in beams:
            filled = list(ids)
            for p, t in zip(positions, tokens, strict=False):
                filled[p] = t
            probs = _probs(path, filled, position)
            if allowed[step] is not None:
                probs = torch.where(allowed[step], probs, torch.tensor(-1.0))
            values, indices = probs.topk(width)
            for v, i in zip(values.tolist(), indices.tolist(), strict=True):
                if v >= 0:
                    grown.append(([*tokens, i], logprob + math.log(v)))
        grown.sort(key=lambda b: -b[1])
        beams = grown[:width]
    return beams


def _fill(ids: list[int], positions: list[int], tokens: list[int]) -> list[int]:
    out = list(ids)
    for p, t in zip(positions, tokens, strict=True):
        out[p] = t
    return out


# --- whole-word targets ---


async def test_word_targets_equal_the_chain_rule(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    _model, tok = _reference(str(path))
    mask = mask_of(path)
    text = f"the {mask} sat on the mat ."
    targets = ("cat", "catmatdog", "house", "dog")
    ours = await engine_for(path).fill_mask(
        [text],
        FillMaskParams(top_k=10, targets=targets, target_scoring="word"),
        RequestContext(use_cache=False),
    )
    original = tok(text)["input_ids"]
    p = original.index(tok.mask_token_id)
    expected = []
    for target in targets:
        # The target's pieces: what the text with the target written in place of the mask has between the
        # unchanged context on either side.
        filled = tok(text.replace(mask, target))["input_ids"]
        n = len(filled) - len(original) + 1
        assert filled[:p] == original[:p]
        assert filled[p + n :] == original[p + 1 :]
        pieces = filled[p : p + n]
        ids = original[:p] + [tok.mask_token_id] * n + original[p + 1 :]
        logprob = sum(
            math.log(float(_probs(path, _fill(ids, list(range(p, p + i)), pieces[:i]), p + i)[pieces[i]]))
            for i in range(n)
        )
        expected.append((pieces, logprob, _decode(path, ids[:p] + pieces + ids[p + n :])))
    expected.sort(key=lambda e: -e[1])
    (answers,) = ours[0]
    assert len(answers) == len(targets)
    assert any(len(e[0]) > 1 for e in expected), "some target must have several pieces"
    for got, (pieces, logprob, sequence) in zip(answers, expected, strict=True):
        assert isinstance(got, Prediction)
        assert got.tokens == tuple(pieces)
        assert got.token == pieces[0]
        assert got.score == pytest.approx(math.exp(logprob), rel=1e-5)
        assert got.sequence == sequence
        assert got.token_str == tok.decode(pieces).strip()


async def test_a_one_piece_target_gets_the_pipelines_probability(bert_dir: Path) -> None:
    engine = engine_for(bert_dir)
    text = "the [MASK] sat on the mat ."
    word = await engine.fill_mask([text], FillMaskParams(targets=("cat",), target_scoring="word"))
    plain = await engine.fill_mask([text], FillMaskParams(targets=("cat",)))
    assert word[0][0][0].score == plain[0][0][0].score


# --- whole-word fills ---


def _allowed(path: Path, family: str, at_text_start: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Which ids may begin and continue a word, from the token strings (special tokens neither)."""
    _, tok = _reference(str(path))
    size = len(tok)
    marked = torch.zeros(size, dtype=torch.bool)
    usable = torch.zeros(size, dtype=torch.bool)
    for token, index in tok.get_vocab().items():
        if index < size:
            usable[index] = True
            marked[index] = token.startswith(MARKERS[family])
    usable[tok.all_special_ids] = False
    if family == "bert":
        return usable & ~marked, usable & marked
    begins = (usable & ~marked) if (family == "roberta" and at_text_start) else (usable & marked)
    return begins, usable & ~marked


@pytest.mark.parametrize("where", ["middle", "start"])
async def test_whole_word_fill_equals_a_beam_search_per_length(mlm_dir: tuple[str, Path], where: str) -> None:
    family, path = mlm_dir
    _, tok = _reference(str(path))
    mask = mask_of(path)
    text = f"the {mask} sat on the mat ." if where == "middle" else f"{mask} sat on the mat ."
    params = FillMaskParams(top_k=6, whole_word=True, max_subwords=3, num_beams=3)
    (ours,) = await engine_for(path).fill_mask([text], params, RequestContext(use_cache=False))
    original = tok(text)["input_ids"]
    p = original.index(tok.mask_token_id)
    begins, continues = _allowed(path, family, at_text_start=where == "start")
    hypotheses = []
    for n in range(1, 4):
        ids = original[:p] + [tok.mask_token_id] * n + original[p + 1 :]
        positions = list(range(p, p + n))
        for tokens, logprob in _beam(path, ids, positions, 3, [begins] + [continues] * (n - 1)):
            hypotheses.append((logprob / n, tokens, _decode(path, _fill(ids, positions, tokens))))
    hypotheses.sort(key=lambda h: -h[0])
    (answers,) = ours
    assert len(answers) == 6
    for got, (mean, tokens, sequence) in zip(answers, hypotheses[:6], strict=True):
        assert isinstance(got, Prediction)
        assert got.tokens == tuple(tokens)
        assert got.score == pytest.approx(math.exp(mean), rel=1e-5)
        assert got.sequence == sequence
        assert got.token_str == tok.decode(tokens).strip()


# --- joint decoding ---


async def test_joint_decoding_equals_a_beam_search_over_the_masks(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    _, tok = _reference(str(path))
    mask = mask_of(path)
    text = f"the {mask} sat on the {mask} and {mask} ."
    params = FillMaskParams(top_k=4, decoding="joint", num_beams=4)
    (ours,) = await engine_for(path).fill_mask([text], params, RequestContext(use_cache=False))
    ids = tok(text)["input_ids"]
    positions = [i for i, t in enumerate(ids) if t == tok.mask_token_id]
    expected = _beam(path, ids, positions, 4, [None] * len(positions))
    (answers,) = ours
    assert len(answers) == 4
    for got, (tokens, logprob) in zip(answers, expected, strict=True):
        assert isinstance(got, JointPrediction)
        assert got.tokens == tuple(tokens)
        assert got.score == pytest.approx(math.exp(logprob), rel=1e-5)
        assert got.token_strs == tuple(tok.decode([t]) for t in tokens)
        assert got.sequence == _decode(path, _fill(ids, positions, tokens))


# --- cost: one batch per step, bounded by the flags ---


@pytest.mark.parametrize(
    ("params", "steps"),
    [
        (FillMaskParams(decoding="joint", num_beams=3, top_k=3), 3),
        (FillMaskParams(whole_word=True, max_subwords=4), 4),
        (FillMaskParams(targets=("cat", "catmatdog"), target_scoring="word"), 7),
    ],
)
async def test_each_step_is_one_batch(bert_dir: Path, params: FillMaskParams, steps: int) -> None:
    # A fresh engine (max_queue makes its cache key unique), so no other request shares its batcher.
    engine = engine_for(bert_dir, max_queue=1000 + steps)
    text = "the [MASK] sat on [MASK] [MASK] ." if params.decoding == "joint" else "the [MASK] sat ."
    before = engine.batcher.stats.batches
    await engine.fill_mask([text], params, RequestContext(use_cache=False))
    assert engine.batcher.stats.batches - before == steps


async def test_concurrent_word_requests_share_batches(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, max_queue=999)
    params = FillMaskParams(decoding="joint", num_beams=2, top_k=2)
    texts = [f"the [MASK] sat on the [MASK] {w} ." for w in ("now", "today", "again", "here")]
    alone = [await engine.fill_mask([t], params, RequestContext(use_cache=False)) for t in texts]
    before = engine.batcher.stats.batches
    together = await engine.fill_mask(texts, params, RequestContext(use_cache=False))
    # Four inputs, two steps each: their rows ride in the same batches, not eight of their own.
    assert engine.batcher.stats.batches - before <= 4
    concurrent = await asyncio.gather(
        *(engine.fill_mask([t], params, RequestContext(use_cache=False)) for t in texts)
    )
    # The same answers however the rows were batched (scores to float32 noise: padding differs).
    for answers in ([[r] for r in together], concurrent):
        for got, want in zip(answers, alone, strict=True):
            assert [h.tokens for h in got[0][0]] == [h.tokens for h in want[0][0]]
            assert [h.score for h in got[0][0]] == pytest.approx([h.score for h in want[0][0]], rel=1e-5)


@pytest.mark.parametrize(
    ("settings", "params", "flag"),
    [
        ({"max_subwords": 2}, FillMaskParams(whole_word=True, max_subwords=3), "--max_subwords"),
        ({"max_beams": 4}, FillMaskParams(decoding="joint", num_beams=8), "--max_beams"),
        ({"max_beams": 4}, FillMaskParams(decoding="joint", top_k=6), "--max_beams"),
        ({"max_decode_rows": 10}, FillMaskParams(whole_word=True, num_beams=5), "--max_decode_rows"),
    ],
)
async def test_work_beyond_the_flags_is_a_400_naming_the_flag(
    bert_dir: Path, settings: dict[str, int], params: FillMaskParams, flag: str
) -> None:
    engine = engine_for(bert_dir, **settings)
    before = engine.batcher.stats.batches
    text = "the [MASK] sat on [MASK] ." if params.decoding == "joint" else "the [MASK] sat ."
    with pytest.raises(BadRequest, match=flag):
        await engine.fill_mask([text], params, RequestContext(use_cache=False))
    assert engine.batcher.stats.batches == before  # refused before any compute


@pytest.mark.parametrize(
    "params", [FillMaskParams(whole_word=True), FillMaskParams(targets=("cat",), target_scoring="word")]
)
async def test_one_mask_options_refuse_several_masks(bert_dir: Path, params: FillMaskParams) -> None:
    with pytest.raises(BadRequest, match="one mask per input; the input has 2"):
        await engine_for(bert_dir).fill_mask(["the [MASK] sat on [MASK] ."], params)
