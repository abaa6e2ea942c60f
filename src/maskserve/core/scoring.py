"""Sentence scores: the pseudo-log-likelihood (PLL) of whole inputs, as docs/scores.md defines it.

Every scored token is one batch row: a copy of the input with that token masked (and, for ``word_l2r``,
every later token of its word), whose log-probability of the true id at that one position is all the row
gives back (:class:`maskserve.core.rows.LogProbsAt`). So a row costs one forward pass with the LM head at one
position; rows of every request share batches, and a long input's rows are cut into batches by the padded-
token budget like any other rows, so memory never grows with an input's length.

Which tokens are scored: every token but the tokenizer's CLS/SEP/BOS/EOS/PAD ids (minicons' rule, which
also scores an unknown token), within ``span`` when given. An input holding the mask token is refused: its
"true" token would be the mask itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maskserve.core import answer_size
from maskserve.core.rows import LogProbsAt, Need
from maskserve.core.task import Plan
from maskserve.domain import TASK_SCORE, EncodedText, SentenceScore, TokenScore, WordScore
from maskserve.errors import BadRequest
from maskserve.params import ScoreParams

if TYPE_CHECKING:
    from maskserve.core.context import RequestContext
    from maskserve.core.engine import Engine
    from maskserve.core.tokenize import TextEncoder

# Bytes a scored token and a word add to an answer, besides their text (keys, numbers, offsets).
_TOKEN_BYTES = 96
_WORD_BYTES = 80


@dataclass(frozen=True)
class Scored:
    """One input as it is scored: its tokens, their offsets and words, the positions that are scored."""

    text: str
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None
    offsets: tuple[tuple[int, int], ...]
    word_ids: tuple[int | None, ...]
    positions: tuple[int, ...]

    def rows(self, mask_id: int, metric: str) -> tuple[list[EncodedText], list[Need]]:
        """One masked copy per scored position, and the true id each must give a log-probability for."""
        rows: list[EncodedText] = []
        needs: list[Need] = []
        for position in self.positions:
            ids = list(self.input_ids)
            ids[position] = mask_id
            word = self.word_ids[position]
            if metric == "word_l2r" and word is not None:
                for later in range(position + 1, len(ids)):
                    if self.word_ids[later] == word:
                        ids[later] = mask_id
            rows.append(EncodedText(tuple(ids), (position,), self.token_type_ids))
            needs.append(LogProbsAt((self.input_ids[position],)))
        return rows, needs


def prepare(encoder: TextEncoder, text: str, where: str, params: ScoreParams, max_tokens: int) -> Scored:
    """Tokenize ``text`` for scoring and check it (a BadRequest names what is wrong and where)."""
    tokenizer = encoder.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise BadRequest(
            "sentence scores need a fast tokenizer (its word ids and offsets); this model has none"
        )
    if params.span is not None and params.span[1] > len(text):
        raise BadRequest(
            f"'parameters.span' {list(params.span)} is outside {where}, which has {len(text)} characters"
        )
    enc = tokenizer(text, return_offsets_mapping=True, return_token_type_ids=encoder.uses_token_types)
    ids = tuple(int(i) for i in enc["input_ids"])
    if len(ids) > encoder.max_length:
        raise BadRequest(
            f"{where} is {len(ids)} tokens long and this model takes at most {encoder.max_length} "
            "(--max_length); a score is never taken of a cut text, so shorten it"
        )
    offsets = tuple((int(a), int(b)) for a, b in enc["offset_mapping"])
    start, end = params.span if params.span is not None else (0, len(text))
    special = encoder.score_excluded_ids
    positions = tuple(
        i for i, (token, (a, b)) in enumerate(zip(ids, offsets, strict=True))
        if token not in special and start <= a and b <= end
    )  # fmt: skip
    if not positions:
        inside = " inside 'parameters.span'" if params.span is not None else ""
        raise BadRequest(f"{where} has no token to score{inside}")
    if len(positions) > max_tokens:
        raise BadRequest(
            f"{where} has {len(positions)} tokens to score, more than the {max_tokens} an input may have "
            "(--max_score_tokens); score a shorter text or a span of it"
        )
    types = enc.get("token_type_ids") if encoder.uses_token_types else None
    return Scored(
        text,
        ids,
        tuple(int(t) for t in types) if types is not None else None,
        offsets,
        tuple(enc.word_ids()),
        positions,
    )


def answer(
    scored: Scored, logprobs: Sequence[float], params: ScoreParams, encoder: TextEncoder
) -> SentenceScore:
    """The input's score from its rows' log-probabilities (summed in float64, in token order)."""
    total = float(sum(logprobs))
    tokens = None
    if params.tokens:
        tokens = tuple(
            TokenScore(scored.input_ids[p], encoder.token_str(scored.input_ids[p]), lp, *scored.offsets[p])
            for p, lp in zip(scored.positions, logprobs, strict=True)
        )
    words = None
    if params.words:
        grouped: dict[Any, list[tuple[int, float]]] = {}
        for p, lp in zip(scored.positions, logprobs, strict=True):
            # Tokens without a word id (none in practice) are words of their own.
            word = scored.word_ids[p] if scored.word_ids[p] is not None else ("token", p)
            grouped.setdefault(word, []).append((p, lp))
        words = tuple(
            WordScore(
                scored.text[scored.offsets[group[0][0]][0] : scored.offsets[group[-1][0]][1]],
                float(sum(lp for _, lp in group)),
                scored.offsets[group[0][0]][0],
                scored.offsets[group[-1][0]][1],
            )
            for group in grouped.values()
        )
    return SentenceScore(total, len(logprobs), tokens, words)


def _answer_bytes(scored: Sequence[Scored], params: ScoreParams, longest_token: int) -> int:
    total = 0
    for item in scored:
        total += 128
        if params.tokens:
            total += len(item.positions) * (_TOKEN_BYTES + 2 * longest_token)
        if params.words:
            total += len(item.positions) * _WORD_BYTES + 2 * len(item.text.encode("utf-8"))
    return total


class Score:
    """The pseudo-log-likelihood of each input (docs/scores.md)."""

    name = TASK_SCORE

    async def plan(
        self, engine: Engine, texts: Sequence[str], params: ScoreParams, ctx: RequestContext
    ) -> Plan[SentenceScore]:
        engine.check_inputs(texts, "text to score")
        mask = engine.info.mask_token
        for index, text in enumerate(texts):
            where = f"input {index}" if len(texts) > 1 else "the input"
            if not text.strip():
                raise BadRequest(f"{where} is empty: there is nothing to score")
            if mask in text:
                raise BadRequest(
                    f"{where} holds the mask token {mask}: a score is of a whole text, with no token left out"
                )
        limit = engine.policy.max_score_tokens
        encoder = engine.encoder

        def prepare_all() -> list[Scored]:
            many = len(texts) > 1
            return [
                prepare(encoder, t, f"input {i}" if many else "the input", params, limit)
                for i, t in enumerate(texts)
            ]

        # Every input is tokenized and checked here, before any compute: a bad one costs no model time.
        with engine.stage("preprocess"):
            checked = await engine.off_loop(prepare_all)
        estimate = _answer_bytes(checked, params, encoder.longest_token)
        answer_size.check(estimate, ctx.answer_limit or engine.policy.answer_limit, len(texts))
        by_text = dict(zip(texts, checked, strict=True))

        async def compute(todo: Sequence[str]) -> list[SentenceScore]:
            mask_id = encoder.mask_token_id
            rows: list[EncodedText] = []
            needs: list[Need] = []
            for text in todo:
                more_rows, more_needs = by_text[text].rows(mask_id, params.metric)
                rows += more_rows
                needs += more_needs
            with engine.stage("predict"):
                found = await engine.rows(rows, needs)
            logprobs = [float(values[0]) for values in found]
            with engine.stage("postprocess"):
                out: list[SentenceScore] = []
                start = 0
                for text in todo:
                    count = len(by_text[text].positions)
                    out.append(answer(by_text[text], logprobs[start : start + count], params, encoder))
                    start += count
                return out

        return Plan(compute, key=lambda text: (text, params))


SCORE = Score()
