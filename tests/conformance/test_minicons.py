"""maskserve's sentence scores against minicons, the field's reference implementation, on the same model:
``MaskedLMScorer.sequence_score(..., reduction=sum, PLL_metric=...)`` and ``token_score``, to 1e-4, for
the three tokenizer families and both metrics (docs/scores.md)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from maskserve.core.scoring import SCORE
from maskserve.params import ScoreParams
from support.engines import engine_for

TEXTS = [
    "The cat sat on the mat.",
    "I don't like café au lait, do you?",
    "Numbers like 1234 and e-mail@example.com, and unbelievably long words.",
]
METRICS = {"word_l2r": "within_word_l2r", "token": "original"}


@cache
def scorer(path: str) -> Any:
    from transformers import PreTrainedTokenizerBase

    # minicons 0.3 calls batch_encode_plus, which transformers 5 removed; __call__ is what it became.
    PreTrainedTokenizerBase.batch_encode_plus = PreTrainedTokenizerBase.__call__  # type: ignore[attr-defined]
    from minicons.scorer import MaskedLMScorer

    return MaskedLMScorer(path, "cpu")


@pytest.mark.parametrize("metric", list(METRICS))
async def test_scores_equal_minicons(mlm_dir: tuple[str, Path], metric: str) -> None:
    _, path = mlm_dir
    reference = scorer(str(path))
    sums = reference.sequence_score(TEXTS, reduction=lambda x: x.sum(0).item(), PLL_metric=METRICS[metric])
    per_token = reference.token_score(TEXTS, PLL_metric=METRICS[metric])
    answers = await engine_for(path).run(SCORE, TEXTS, ScoreParams(metric=metric, tokens=True))
    for ours, total, tokens in zip(answers, sums, per_token, strict=True):
        assert ours.score == pytest.approx(total, abs=1e-4)
        assert ours.tokens is not None
        assert [t.token_str.strip() for t in ours.tokens] == [t for t, _ in tokens]
        assert [t.logprob for t in ours.tokens] == pytest.approx([lp for _, lp in tokens], abs=1e-4)
