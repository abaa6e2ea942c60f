"""Tokenization with the pipeline's rules: mask lookup, truncation, padding, target resolution."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskserve.backends.base import EncodedBatch
from maskserve.domain import EncodedText, Int64Array
from maskserve.errors import BadRequest, preview

logger = logging.getLogger(__name__)

# Replaced targets already logged; past this many distinct ones the set starts again.
_MAX_WARNED_TARGETS = 4096


def load_tokenizer(path: Path, *, disable_lower_case: bool = False, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if disable_lower_case:
        kwargs["do_lower_case"] = False
    return AutoTokenizer.from_pretrained(str(path), **kwargs)


class TextEncoder:
    """Wraps a transformers tokenizer; every method is safe to call from worker threads."""

    def __init__(self, tokenizer: Any, max_length: int, *, truncation: bool = True) -> None:
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer defines no mask token")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation = truncation
        self.mask_token: str = tokenizer.mask_token
        self.mask_token_id: int = int(tokenizer.mask_token_id)
        self.pad_token_id: int | None = tokenizer.pad_token_id
        # Padding positions are masked out of attention, so any id works when the tokenizer has no pad token.
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self._vocab: dict[str, int] = dict(tokenizer.get_vocab())
        self.uses_token_types = "token_type_ids" in tokenizer.model_input_names
        # At most one entry per vocabulary id; a dict is safe to share between threads under the GIL.
        self._token_strs: dict[int, str] = {}
        self._warned_targets: set[str] = set()
        # What a sentence score leaves out: the tokens a tokenizer adds around a text (minicons' rule, by id).
        self.score_excluded_ids = frozenset(
            int(i)
            for i in (
                tokenizer.cls_token_id,
                tokenizer.sep_token_id,
                tokenizer.bos_token_id,
                tokenizer.eos_token_id,
                tokenizer.pad_token_id,
            )
            if i is not None
        )
        # Bytes of the longest vocabulary entry: bounds a candidate's token_str when sizing an answer.
        self.longest_token = max((len(t.encode("utf-8")) for t in self._vocab), default=1)

    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        """Tokenize and truncate like ``pipeline(..., tokenizer_kwargs={"truncation": True})``; without
        truncation, a text longer than max_length is a BadRequest."""
        enc = self.tokenizer(
            list(texts),
            truncation=self.truncation,
            max_length=self.max_length if self.truncation else None,
            return_attention_mask=False,
            return_token_type_ids=self.uses_token_types,
        )
        token_types = enc.get("token_type_ids") if self.uses_token_types else None
        out: list[EncodedText] = []
        for index, ids in enumerate(enc["input_ids"]):
            if len(ids) > self.max_length:
                where = f"input {index} is" if len(texts) > 1 else "the input is"
                raise BadRequest(
                    f"{where} {len(ids)} tokens long and this model takes at most {self.max_length} "
                    "(--max_length); the server runs with --truncation false, so shorten the text"
                )
            positions = tuple(i for i, tok in enumerate(ids) if tok == self.mask_token_id)
            if not positions:
                raise BadRequest(self._no_mask_message(texts, index))
            types = tuple(token_types[index]) if token_types is not None else None
            out.append(EncodedText(input_ids=tuple(ids), mask_positions=positions, token_type_ids=types))
        return out

    def _no_mask_message(self, texts: Sequence[str], index: int) -> str:
        where = f" (input {index})" if len(texts) > 1 else ""
        full = self.tokenizer(texts[index], truncation=False)["input_ids"]
        if self.mask_token_id in full:
            first = full.index(self.mask_token_id)
            return (
                f"The mask_token ({self.mask_token}) was cut off by truncation{where}: "
                f"it is token {first + 1} of {len(full)}, "
                f"but inputs are truncated to max_length={self.max_length} tokens. "
                "Shorten the text or move the mask closer to its start."
            )
        # The pipeline's own wording, so clients that match on it keep working.
        return f"No mask_token ({self.mask_token}) found on the input{where}"

    def pad(self, items: Sequence[EncodedText]) -> EncodedBatch:
        width = max(item.length for item in items)
        ids = np.full((len(items), width), self._pad_id, dtype=np.int64)
        attention = np.zeros((len(items), width), dtype=np.int64)
        types = np.zeros((len(items), width), dtype=np.int64) if self.uses_token_types else None
        rows: list[int] = []
        cols: list[int] = []
        for row, item in enumerate(items):
            ids[row, : item.length] = item.input_ids
            attention[row, : item.length] = 1
            if types is not None and item.token_type_ids is not None:
                types[row, : item.length] = item.token_type_ids
            rows.extend([row] * len(item.mask_positions))
            cols.extend(item.mask_positions)
        return EncodedBatch(
            input_ids=ids,
            attention_mask=attention,
            token_type_ids=types,
            mask_rows=np.asarray(rows, dtype=np.int64),
            mask_cols=np.asarray(cols, dtype=np.int64),
        )

    def target_ids(self, targets: Sequence[str]) -> tuple[Int64Array, list[str]]:
        """Resolve targets as the pipeline does: vocabulary first, else the first sub-token, deduplicated.

        Also returns one warning per target that was not taken as it was written, for the client: the
        pipeline only logs these, so a client never learns that "Zzxqwv" was scored as "z".
        """
        ids: list[int] = []
        warnings: list[str] = []
        for target in targets:
            token_id = self._vocab.get(target)
            if token_id is None:
                pieces = self.tokenizer(
                    target,
                    add_special_tokens=False,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                    max_length=1,
                    truncation=True,
                )["input_ids"]
                if not pieces:
                    warnings.append(
                        f"target {preview(target)} is not in the model's vocabulary and has no token: ignored"
                    )
                    self._log_once(target, None)
                    continue
                token_id = pieces[0]
                piece = self.tokenizer.convert_ids_to_tokens(int(token_id))
                warnings.append(
                    f"target {preview(target)} is not in the model's vocabulary: scored as its first "
                    f"sub-token {preview(piece)} (as the pipeline does)"
                )
                self._log_once(target, piece)
            ids.append(int(token_id))
        # set() order, not sorted order: the pipeline's top-k tie-breaking follows it.
        unique = list(set(ids))
        if not unique:
            raise BadRequest(
                f"None of the targets {preview(list(targets))} maps to a token of this model's vocabulary. "
                "Give at least one target that is a word or sub-word the tokenizer knows."
            )
        return np.asarray(unique, dtype=np.int64), warnings

    def _log_once(self, target: str, piece: str | None) -> None:
        """Log a replaced target the first time it is seen, not on every request that sends it again. The
        words stay out of the log (request content, see --log_requests); the client's answer names them."""
        if target in self._warned_targets:
            return
        if len(self._warned_targets) >= _MAX_WARNED_TARGETS:
            self._warned_targets.clear()  # bounded memory; a target may then be logged a second time
        self._warned_targets.add(target)
        what = (
            "ignored (no token)" if piece is None else "scored as its first sub-token (as the pipeline does)"
        )
        logger.info("a target not in the vocabulary was %s; the answer carries a warning", what)

    def decode(self, ids: Sequence[int] | Int64Array, *, skip_special_tokens: bool = False) -> str:
        # Python ints: transformers converts numpy scalars one by one, which costs more than the decode.
        plain = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        return str(self.tokenizer.decode(plain, skip_special_tokens=skip_special_tokens))

    def token_str(self, token_id: int) -> str:
        """``decode([token_id])``, remembered: every answer decodes its candidates, and they repeat."""
        text = self._token_strs.get(token_id)
        if text is None:
            text = self._token_strs[token_id] = self.decode([token_id])
        return text
