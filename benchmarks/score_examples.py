"""The worked examples of docs/scores.md, computed with plain transformers (no maskserve code): every masked
copy of the sentence in one batch through the whole model, the log-softmax at each scored position.

    python benchmarks/score_examples.py ../shared/models/minilm-l6-mlm-demo
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer


@torch.no_grad()
def example(model: Any, tok: Any, text: str, metric: str) -> None:
    enc = tok(text, return_offsets_mapping=True)
    ids, words, spans = enc["input_ids"], enc.word_ids(), enc["offset_mapping"]
    special = {tok.cls_token_id, tok.sep_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}
    scored = [i for i, t in enumerate(ids) if t not in special]
    batch = torch.tensor([ids] * len(scored))
    for row, i in enumerate(scored):
        later = [j for j in range(i, len(ids)) if words[j] == words[i]] if metric == "word_l2r" else [i]
        batch[row, later] = tok.mask_token_id
    logits = model(input_ids=batch).logits[torch.arange(len(scored)), torch.tensor(scored)]
    logprobs = torch.log_softmax(logits.double(), dim=-1)[
        torch.arange(len(scored)), torch.tensor(ids)[scored]
    ]
    print(f"## {metric}: {text!r}")
    for row, i in enumerate(scored):
        masked = tok.convert_ids_to_tokens(batch[row].tolist())
        print(f"  {tok.convert_ids_to_tokens(ids[i]):>12} {spans[i]} word {words[i]}: {logprobs[row]:.4f}"
              f"   input: {' '.join(masked)}")  # fmt: skip
    score, count = float(logprobs.sum()), len(scored)
    print(f"  score {score:.4f}, num_tokens {count}, pseudo_perplexity {math.exp(-score / count):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    args = parser.parse_args()
    model = AutoModelForMaskedLM.from_pretrained(args.model).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    for text in ("The cat sat on the mat.", "The mat sat on the cat."):
        example(model, tok, text, "word_l2r")
    example(model, tok, "He is unbelievably tall.", "word_l2r")
    example(model, tok, "He is unbelievably tall.", "token")


if __name__ == "__main__":
    main()
