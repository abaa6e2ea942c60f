"""Sentence scores in the engine: equal to plain forward passes of the whole model (word_l2r and token,
the three tokenizer families, tokens, words, spans, both backends); every row shares the batcher; a long
input is cut into batches by the padded-token budget; every bad input is a 400 before compute."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from maskserve.core.context import RequestContext
from maskserve.core.scoring import SCORE
from maskserve.errors import BadRequest
from maskserve.params import ScoreParams
from support.engines import engine_for
from support.pll import sentence_score

TEXTS = [
    "The cat sat on the mat.",
    "I don't like café au lait, do you?",
    "Numbers like 1234 and e-mail@example.com, and unbelievably long words.",
]


@pytest.mark.parametrize("metric", ["word_l2r", "token"])
async def test_scores_equal_plain_forward_passes(mlm_dir: tuple[str, Path], metric: str) -> None:
    _, path = mlm_dir
    params = ScoreParams(metric=metric, tokens=True, words=True)
    answers = await engine_for(path).run(SCORE, TEXTS, params, RequestContext(use_cache=False))
    for text, got in zip(TEXTS, answers, strict=True):
        want = sentence_score(path, text, metric)
        assert got.num_tokens == want["num_tokens"]
        assert got.score == pytest.approx(want["score"], abs=1e-5)
        assert got.pseudo_perplexity == pytest.approx(math.exp(-want["score"] / want["num_tokens"]), rel=1e-5)
        assert got.tokens is not None
        assert [t.token for t in got.tokens] == [t["token"] for t in want["tokens"]]
        assert [(t.start, t.end) for t in got.tokens] == [(t["start"], t["end"]) for t in want["tokens"]]
        assert [t.logprob for t in got.tokens] == pytest.approx(
            [t["logprob"] for t in want["tokens"]], abs=1e-5
        )
        assert got.words is not None
        assert [w.word for w in got.words] == [w["word"] for w in want["words"]]
        assert [w.logprob for w in got.words] == pytest.approx(
            [w["logprob"] for w in want["words"]], abs=1e-5
        )
        assert all(text[w.start : w.end] == w.word for w in got.words)


async def test_the_two_metrics_differ_where_a_word_has_several_pieces(bert_dir: Path) -> None:
    engine = engine_for(bert_dir)
    text = "unbelievably long words"  # several WordPiece pieces
    word, token = await asyncio.gather(
        engine.run(SCORE, [text], ScoreParams(metric="word_l2r")),
        engine.run(SCORE, [text], ScoreParams(metric="token")),
    )
    assert word[0].num_tokens == token[0].num_tokens
    assert word[0].score != token[0].score


async def test_a_span_scores_its_tokens_with_the_rest_as_context(roberta_dir: Path) -> None:
    text = "The capital of France is Paris."
    span = (text.index("Paris"), text.index("Paris") + len("Paris"))
    (got,) = await engine_for(roberta_dir).run(SCORE, [text], ScoreParams(span=span, tokens=True))
    want = sentence_score(roberta_dir, text, "word_l2r", span)
    assert got.num_tokens == want["num_tokens"] >= 1
    assert got.score == pytest.approx(want["score"], abs=1e-5)
    assert got.tokens is not None
    assert all(span[0] <= t.start and t.end <= span[1] for t in got.tokens)


async def test_onnx_runtime_scores_as_torch(bert_dir: Path, tmp_path: Path) -> None:
    params = ScoreParams(tokens=True)
    onnx = engine_for(bert_dir, backend="onnx", onnx_cache_dir=str(tmp_path))
    got = await onnx.run(SCORE, TEXTS, params)
    want = await engine_for(bert_dir).run(SCORE, TEXTS, params)
    for a, b in zip(got, want, strict=True):
        assert a.num_tokens == b.num_tokens
        assert a.score == pytest.approx(b.score, abs=1e-4)


async def test_rows_of_concurrent_requests_share_batches(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, model_name="batched", cache_size=0)
    before = engine.batcher.stats.batches
    rows_before = engine.batcher.stats.items
    await asyncio.gather(*(engine.run(SCORE, [t], ScoreParams()) for t in TEXTS * 3))
    rows = engine.batcher.stats.items - rows_before
    assert rows == 3 * sum(sentence_score(bert_dir, t, "token")["num_tokens"] for t in TEXTS)
    assert engine.batcher.stats.batches - before < rows  # rows were batched, not run one by one


async def test_a_long_input_is_cut_into_batches_within_the_token_budget(bert_dir: Path) -> None:
    text = " ".join(["word"] * 60)
    engine = engine_for(bert_dir, model_name="budget", max_batch_tokens=256, cache_size=0)
    before = engine.batcher.stats.batches
    (got,) = await engine.run(SCORE, [text], ScoreParams(metric="token"))
    length = len(engine.encoder.tokenizer(text)["input_ids"])
    batches = engine.batcher.stats.batches - before
    assert got.num_tokens == 60
    assert batches >= math.ceil(60 / (256 // length))  # at most 256 padded tokens in any batch
    assert max(engine.batcher.stats.last_sizes[-batches:]) * length <= 256


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        ("", ScoreParams(), "the input is empty: there is nothing to score"),
        ("   ", ScoreParams(), "empty"),
        ("the [MASK] sat", ScoreParams(), "holds the mask token [MASK]"),
        ("[SEP] [CLS]", ScoreParams(), "has no token to score"),
        ("the cat sat", ScoreParams(span=(0, 40)), "'parameters.span' [0, 40] is outside the input"),
        ("the cat sat", ScoreParams(span=(3, 4)), "has no token to score inside 'parameters.span'"),
        ("a\x00b", ScoreParams(), "NUL character"),
    ],
)
async def test_bad_inputs_are_400s_that_say_why(
    bert_dir: Path, text: str, params: ScoreParams, message: str
) -> None:
    engine = engine_for(bert_dir)
    batches = engine.batcher.stats.batches
    with pytest.raises(BadRequest) as raised:
        await engine.run(SCORE, [text], params)
    assert message in str(raised.value)
    assert engine.batcher.stats.batches == batches  # refused before any compute


async def test_too_long_or_too_many_tokens_are_refused_naming_the_flag(bert_dir: Path) -> None:
    long = " ".join(["word"] * 600)
    with pytest.raises(BadRequest, match=r"602 tokens long and this model takes at most 64 \(--max_length\)"):
        await engine_for(bert_dir).run(SCORE, [long], ScoreParams())
    limited = engine_for(bert_dir, model_name="few", max_score_tokens=5)
    with pytest.raises(
        BadRequest, match=r"input 1 has 6 tokens to score, more than the 5 .*--max_score_tokens"
    ):
        await limited.run(SCORE, ["a b c", "a b c d e f"], ScoreParams())


async def test_the_cache_keys_hold_the_task_and_its_parameters(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, model_name="cached", cache_size=64)
    first = RequestContext()
    (a,) = await engine.run(SCORE, ["the cat sat"], ScoreParams(), first)
    again = RequestContext()
    (b,) = await engine.run(SCORE, ["the cat sat"], ScoreParams(), again)
    other = RequestContext()
    (c,) = await engine.run(SCORE, ["the cat sat"], ScoreParams(metric="token", tokens=True), other)
    assert (first.label, again.label, other.label) == ("miss", "hit", "miss")
    assert a == b
    assert c.tokens is not None


@pytest.mark.parametrize("backend", ["torch", "onnx"])
async def test_int8_scores_the_same_tokens(bert_dir: Path, tmp_path: Path, backend: str) -> None:
    int8 = engine_for(bert_dir, backend=backend, quantize="int8", onnx_cache_dir=str(tmp_path))
    got = await int8.run(SCORE, TEXTS, ScoreParams(tokens=True))
    want = await engine_for(bert_dir).run(SCORE, TEXTS, ScoreParams(tokens=True))
    for a, b in zip(got, want, strict=True):
        assert a.tokens is not None
        assert b.tokens is not None
        assert [t.token for t in a.tokens] == [t.token for t in b.tokens]
        assert math.isfinite(a.score)
        assert a.score == pytest.approx(b.score, rel=0.05)  # int8 moves the numbers a little, not the tokens
