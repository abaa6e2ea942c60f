"""The word algorithms of docs/words.md: whole-word targets, whole-word fills and joint decoding of
several masks. Each needs several forward passes; every pass goes through the shared batcher (so concurrent
requests still share batches), and one step's passes of one input are submitted together.

Probabilities are the model's softmax over the whole vocabulary at the scored position, in float32 as the
pipeline computes them; log-probabilities are summed in float64. Ties keep a fixed order: earlier beams
first, then the model's own top-k order.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from maskserve.core.numeric import softmax, top_k
from maskserve.core.tokenize import TextEncoder
from maskserve.core.words import WordVocab, expand_mask, fill, target_pieces, word_vocab
from maskserve.domain import (
    Candidate,
    EncodedText,
    Float32Array,
    InputPredictions,
    JointPrediction,
    Prediction,
)
from maskserve.errors import BadRequest
from maskserve.params import FillMaskParams

Submit = Callable[[Sequence[EncodedText]], Awaitable[list[Float32Array]]]


@dataclass(frozen=True)
class DecodeLimits:
    """What one request may ask of the word algorithms; each breach is a 400 naming the flag."""

    max_subwords: int = 8
    max_beams: int = 32
    max_rows: int = 1024


@dataclass(frozen=True)
class _Hypothesis:
    tokens: tuple[int, ...]
    logprob: float  # summed over the tokens, float64


def _probabilities(logits: Float32Array) -> Float32Array:
    """Softmax over the vocabulary, [rows, vocab], float32: the pipeline's own numbers."""
    return softmax(logits)


def _extend(
    beams: Sequence[_Hypothesis], logits: Sequence[Float32Array], width: int, allowed: np.ndarray | None
) -> list[_Hypothesis]:
    """Each beam extended by its ``width`` most probable allowed tokens; the best ``width`` kept."""
    grown: list[_Hypothesis] = []
    for beam, row in zip(beams, logits, strict=True):
        probs = _probabilities(row)[0]
        if allowed is not None:
            probs = np.where(allowed, probs, np.float32(-1.0))
        values, indices = top_k(probs[None, :], min(width, int((probs >= 0).sum())))
        for p, token in zip(values[0].tolist(), indices[0].tolist(), strict=True):
            step = math.log(p) if p > 0 else -math.inf
            grown.append(_Hypothesis((*beam.tokens, int(token)), beam.logprob + step))
    grown.sort(key=lambda h: -h.logprob)  # stable: ties keep beam order, then the top-k order
    return grown[:width]


class WordDecoder:
    """The word algorithms over one model: ``submit`` runs rows through the shared batcher."""

    def __init__(self, encoder: TextEncoder, vocab_size: int, submit: Submit, limits: DecodeLimits) -> None:
        self.encoder = encoder
        self._submit = submit
        self.limits = limits
        # Classified once, at load (a pass over the vocabulary); a tokenizer without word markers keeps
        # its 400 for the requests that need it.
        self._word_vocab: WordVocab | BadRequest
        try:
            self._word_vocab = word_vocab(encoder.tokenizer, vocab_size)
        except BadRequest as exc:
            self._word_vocab = exc

    def _vocab(self) -> WordVocab:
        if isinstance(self._word_vocab, BadRequest):
            raise BadRequest(self._word_vocab.message)
        return self._word_vocab

    # --- checks ---

    def check(self, encoded: Sequence[EncodedText], params: FillMaskParams) -> None:
        """Every per-request bound, before any compute: the options against their flags, the mask count
        each algorithm needs, and the forward rows the whole request will cost."""
        limits = self.limits
        if params.whole_word and params.max_subwords > limits.max_subwords:
            raise BadRequest(
                f"max_subwords {params.max_subwords} is over this server's limit of {limits.max_subwords} "
                "(--max_subwords)"
            )
        if (params.whole_word or params.decoding == "joint") and params.beams > limits.max_beams:
            raise BadRequest(
                f"num_beams {params.beams} is over this server's limit of {limits.max_beams} (--max_beams)"
            )
        if params.whole_word or params.target_scoring == "word":
            option = "whole_word" if params.whole_word else "target_scoring 'word'"
            for index, item in enumerate(encoded):
                if len(item.mask_positions) != 1:
                    where = f"input {index}" if len(encoded) > 1 else "the input"
                    raise BadRequest(
                        f"{option} takes one mask per input; {where} has {len(item.mask_positions)}"
                    )
            self._vocab()  # a tokenizer without word markers is a 400 here, before any compute

    def check_rows(self, rows: int) -> None:
        if rows > self.limits.max_rows:
            raise BadRequest(
                f"this request needs {rows} forward rows of the model, over this server's limit of "
                f"{self.limits.max_rows} per request (--max_decode_rows); send fewer inputs, targets, "
                "beams or subwords per request"
            )

    def _check_length(self, item: EncodedText, pieces: int) -> None:
        length = item.length + pieces - 1
        if length > self.encoder.max_length:
            raise BadRequest(
                f"with its mask as {pieces} pieces the input is {length} tokens long, over this model's "
                f"{self.encoder.max_length} (--max_length); shorten the text"
            )

    # --- the three algorithms ---

    async def run(
        self, texts: Sequence[str], encoded: Sequence[EncodedText], params: FillMaskParams
    ) -> list[InputPredictions]:
        self.check(encoded, params)
        if params.target_scoring == "word":
            targets = params.targets or ()
            pieces = await asyncio.to_thread(lambda: [self._pieces(text, targets) for text in texts])
            self.check_rows(sum(len(p) for per_input in pieces for p in per_input))
            work = [self._score_targets(e, p, params.top_k) for e, p in zip(encoded, pieces, strict=True)]
        elif params.whole_word:
            per_input = sum(1 + (length - 1) * params.beams for length in range(1, params.max_subwords + 1))
            self.check_rows(per_input * len(encoded))
            work = [self._whole_word(e, params) for e in encoded]
        else:
            self.check_rows(sum(1 + (len(e.mask_positions) - 1) * params.beams for e in encoded))
            work = [self._joint(e, params) for e in encoded]
        return list(await asyncio.gather(*work))

    def _pieces(self, text: str, targets: Sequence[str]) -> list[tuple[int, ...]]:
        """Each distinct target's pieces in this text, in the targets' order; targets without any dropped."""
        seen: dict[tuple[int, ...], None] = {}
        for target in targets:
            word = target.strip()
            if word:
                pieces = target_pieces(self.encoder.tokenizer, text, self.encoder.mask_token, word)
                if pieces:
                    seen.setdefault(pieces, None)
        if not seen:
            raise BadRequest("none of the targets has a token in this model's vocabulary")
        return list(seen)

    def _sequence(self, item: EncodedText, positions: Sequence[int], tokens: Sequence[int]) -> str:
        """The input with every mask filled, decoded without special tokens (and without padding)."""
        filled = np.asarray(fill(item, tuple(positions), tuple(tokens), None).input_ids, dtype=np.int64)
        if self.encoder.pad_token_id is not None:
            filled = filled[filled != self.encoder.pad_token_id]
        return self.encoder.decode(filled, skip_special_tokens=True)

    def _word(self, pieces: Sequence[int]) -> str:
        return self.encoder.decode(list(pieces)).strip()

    async def _score_targets(
        self, item: EncodedText, targets: list[tuple[int, ...]], top_k: int
    ) -> list[list[Candidate]]:
        """log P(word) = sum_i log p(t_i | t_1..t_{i-1} filled, t_i..t_L masked), per target."""
        mask_id = self.encoder.mask_token_id
        for pieces in targets:
            self._check_length(item, len(pieces))
        expanded = [expand_mask(item, mask_id, len(pieces)) for pieces in targets]
        logprobs = [0.0] * len(targets)
        # P itself as the product of the pieces' probabilities, so a one-piece target's score is the
        # pipeline's float exactly (exp(log p) may differ in the last bit); the log ranks.
        products = [1.0] * len(targets)
        for step in range(max(len(p) for p in targets)):
            live = [i for i, p in enumerate(targets) if len(p) > step]
            rows = [
                fill(
                    expanded[i],
                    expanded[i].mask_positions,
                    targets[i][:step],
                    expanded[i].mask_positions[step],
                )
                for i in live
            ]
            for i, logits in zip(live, await self._submit(rows), strict=True):
                p = float(_probabilities(logits)[0, targets[i][step]])
                logprobs[i] += math.log(p) if p > 0 else -math.inf
                products[i] *= p
        order = sorted(range(len(targets)), key=lambda i: -logprobs[i])[:top_k]
        answers: list[Candidate] = []
        for i in order:
            pieces = targets[i]
            answers.append(
                Prediction(
                    score=products[i],
                    token=pieces[0],
                    token_str=self._word(pieces),
                    sequence=self._sequence(expanded[i], expanded[i].mask_positions, pieces),
                    tokens=pieces,
                )
            )
        return [answers]

    async def _whole_word(self, item: EncodedText, params: FillMaskParams) -> list[list[Candidate]]:
        """A left-to-right beam search per length 1..max_subwords, its first piece beginning a word and the
        rest continuing it; all lengths ranked together by mean log-probability per piece."""
        vocab = self._vocab()
        mask_id = self.encoder.mask_token_id
        lengths = [
            n for n in range(1, params.max_subwords + 1) if item.length + n - 1 <= self.encoder.max_length
        ]
        if not lengths:
            self._check_length(item, 1)
        expanded = {n: expand_mask(item, mask_id, n) for n in lengths}
        at_text_start = item.mask_positions[0] == self._first_text_position(item)
        first = vocab.begins_at_text_start if at_text_start else vocab.begins
        beams: dict[int, list[_Hypothesis]] = {n: [_Hypothesis((), 0.0)] for n in lengths}
        for step in range(max(lengths)):
            live = [n for n in lengths if n > step]
            rows = [
                fill(expanded[n], expanded[n].mask_positions, beam.tokens, expanded[n].mask_positions[step])
                for n in live
                for beam in beams[n]
            ]
            logits = iter(await self._submit(rows))
            allowed = first if step == 0 else vocab.continues
            for n in live:
                mine = [next(logits) for _ in beams[n]]
                beams[n] = _extend(beams[n], mine, params.beams, allowed)
        ranked = sorted(((h.logprob / n, n, h) for n in lengths for h in beams[n]), key=lambda t: -t[0])[
            : params.top_k
        ]
        answers: list[Candidate] = [
            Prediction(
                score=math.exp(mean),
                token=h.tokens[0],
                token_str=self._word(h.tokens),
                sequence=self._sequence(expanded[n], expanded[n].mask_positions, h.tokens),
                tokens=h.tokens,
            )
            for mean, n, h in ranked
        ]
        return [answers]

    def _first_text_position(self, item: EncodedText) -> int:
        """Where the text begins: after the special tokens the tokenizer puts in front."""
        special = set(self.encoder.tokenizer.all_special_ids) - {self.encoder.mask_token_id}
        position = 0
        while position < item.length and item.input_ids[position] in special:
            position += 1
        return position

    async def _joint(self, item: EncodedText, params: FillMaskParams) -> list[list[Candidate]]:
        """Beam search over the masks from left to right, masks after the current one still masked."""
        positions = item.mask_positions
        beams = [_Hypothesis((), 0.0)]
        for position in positions:
            rows = [fill(item, positions, beam.tokens, position) for beam in beams]
            beams = _extend(beams, await self._submit(rows), params.beams, None)
        answers: list[Candidate] = [
            JointPrediction(
                score=math.exp(h.logprob),
                tokens=h.tokens,
                token_strs=tuple(self.encoder.token_str(t) for t in h.tokens),
                sequence=self._sequence(item, positions, h.tokens),
            )
            for h in beams[: params.top_k]
        ]
        return [answers]
