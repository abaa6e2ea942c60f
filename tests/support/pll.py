"""A second implementation of sentence scores (docs/scores.md) with plain transformers forward passes: the
whole model's logits over every position, one masked copy per scored token, no maskserve code. The tests hold
maskserve's scores to it."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer


@cache
def model_and_tokenizer(path: str) -> tuple[Any, Any]:
    model = AutoModelForMaskedLM.from_pretrained(path)
    model.eval()
    return model, AutoTokenizer.from_pretrained(path)


@torch.no_grad()
def token_logprobs(
    path: Path, text: str, metric: str, span: tuple[int, int] | None = None
) -> list[dict[str, Any]]:
    """Every scored token of ``text``: id, log-probability and character offsets."""
    model, tok = model_and_tokenizer(str(path))
    enc = tok(text, return_offsets_mapping=True)
    ids, words, offsets = enc["input_ids"], enc.word_ids(), enc["offset_mapping"]
    start, end = span if span is not None else (0, len(text))
    left_out = {tok.cls_token_id, tok.sep_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}
    scored = [
        i for i, t in enumerate(ids) if t not in left_out and start <= offsets[i][0] and offsets[i][1] <= end
    ]
    out = []
    for i in scored:
        masked = list(ids)
        masked[i] = tok.mask_token_id
        if metric == "word_l2r":
            for j in range(i + 1, len(ids)):
                if words[j] is not None and words[j] == words[i]:
                    masked[j] = tok.mask_token_id
        logits = model(input_ids=torch.tensor([masked])).logits[0, i]
        logprob = torch.log_softmax(logits.double(), dim=-1)[ids[i]].item()
        out.append(
            {
                "token": ids[i],
                "logprob": logprob,
                "start": offsets[i][0],
                "end": offsets[i][1],
                "word": words[i],
            }
        )
    return out


def sentence_score(path: Path, text: str, metric: str, span: tuple[int, int] | None = None) -> dict[str, Any]:
    """The score, the token count and each word's log-probability (the sum of its tokens')."""
    tokens = token_logprobs(path, text, metric, span)
    words: dict[int, list[dict[str, Any]]] = {}
    for t in tokens:
        words.setdefault(t["word"], []).append(t)
    return {
        "score": sum(t["logprob"] for t in tokens),
        "num_tokens": len(tokens),
        "tokens": tokens,
        "words": [
            {"word": text[g[0]["start"] : g[-1]["end"]], "logprob": sum(t["logprob"] for t in g)}
            for g in words.values()
        ],
    }
