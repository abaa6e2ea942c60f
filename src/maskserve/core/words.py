"""Words as a tokenizer writes them: which vocabulary entries begin a word and which continue one, and the
pieces a target word has in the text it is scored in (docs/words.md has the definitions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from maskserve.domain import EncodedText
from maskserve.errors import BadRequest

BoolArray = npt.NDArray[np.bool_]

# The three ways a subword vocabulary marks word boundaries, by the marker a piece carries.
WORDPIECE = "wordpiece"  # "##" on continuing pieces
BYTE_LEVEL_BPE = "byte-level BPE"  # "Ġ" (an encoded space) on pieces that begin a word
SENTENCEPIECE = "sentencepiece"  # "▁" on pieces that begin a word
_MARKERS = ((WORDPIECE, "##"), (BYTE_LEVEL_BPE, "\u0120"), (SENTENCEPIECE, "\u2581"))
# A marker counts when at least this share of the vocabulary carries it (a handful of "##" entries in a
# SentencePiece vocabulary is not a WordPiece scheme).
_MIN_SHARE = 0.05


@dataclass(frozen=True)
class WordVocab:
    """Per vocabulary id: may it begin a word, may it continue one. Special tokens do neither."""

    scheme: str
    begins: BoolArray
    continues: BoolArray
    # Byte-level BPE at the very start of a text, with no space before it: the first piece has no "Ġ".
    begins_at_text_start: BoolArray


def word_vocab(tokenizer: Any, vocab_size: int) -> WordVocab:
    """Classify the vocabulary by its word-boundary marker; a 400 when it has none of the three."""
    vocab: dict[str, int] = tokenizer.get_vocab()
    counts = {scheme: sum(1 for t in vocab if t.startswith(marker)) for scheme, marker in _MARKERS}
    scheme, count = max(counts.items(), key=lambda kv: kv[1])
    if count < _MIN_SHARE * len(vocab):
        raise BadRequest(
            "this model's tokenizer marks no word boundaries (neither WordPiece '##', byte-level BPE 'Ġ' nor "
            "SentencePiece '▁' pieces), so whole words cannot be told from pieces: whole_word and "
            "target_scoring 'word' are not available for it"
        )
    marker = dict(_MARKERS)[scheme]
    marked = np.zeros(vocab_size, dtype=bool)
    usable = np.zeros(vocab_size, dtype=bool)
    for token, index in vocab.items():
        if 0 <= index < vocab_size:
            usable[index] = True
            marked[index] = token.startswith(marker)
    special = [i for i in tokenizer.all_special_ids if 0 <= i < vocab_size]
    usable[special] = False
    if scheme == WORDPIECE:
        begins, continues = usable & ~marked, usable & marked
        at_start = begins
    else:
        begins, continues = usable & marked, usable & ~marked
        at_start = continues if scheme == BYTE_LEVEL_BPE else begins
    return WordVocab(scheme, begins, continues, at_start)


def target_pieces(tokenizer: Any, text: str, mask_token: str, target: str) -> tuple[int, ...]:
    """The tokens of ``target`` when it is written in place of the mask of ``text``: the pieces a word has
    in running text (RoBERTa's and XLM-R's leading-space forms included)."""
    start = text.index(mask_token)
    filled = text[:start] + target + text[start + len(mask_token) :]
    end = start + len(target)
    enc = tokenizer(filled, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    return tuple(
        int(token)
        for token, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        if a < end and b > start
    )


def expand_mask(encoded: EncodedText, mask_id: int, pieces: int) -> EncodedText:
    """``encoded`` (one mask) with its mask replaced by ``pieces`` masks, each a position to score."""
    (position,) = encoded.mask_positions
    ids = encoded.input_ids
    types = encoded.token_type_ids
    return EncodedText(
        input_ids=ids[:position] + (mask_id,) * pieces + ids[position + 1 :],
        mask_positions=tuple(range(position, position + pieces)),
        token_type_ids=None
        if types is None
        else types[:position] + (types[position],) * pieces + types[position + 1 :],
    )


def fill(
    encoded: EncodedText, positions: tuple[int, ...], tokens: tuple[int, ...], score_at: int | None
) -> EncodedText:
    """``encoded`` with ``tokens`` written at the first positions and logits wanted at ``score_at``."""
    ids = list(encoded.input_ids)
    for position, token in zip(positions, tokens, strict=False):
        ids[position] = token
    return EncodedText(
        input_ids=tuple(ids),
        mask_positions=() if score_at is None else (score_at,),
        token_type_ids=encoded.token_type_ids,
    )
