"""The worked examples of docs/words.md, computed with plain transformers forward passes (no maskserve
code), so the definitions can be checked by hand against a second implementation.

    python benchmarks/words_examples.py ../shared/models/minilm-l6-mlm-demo
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer


def probs(model: torch.nn.Module, ids: list[int], position: int) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, position].softmax(-1)


def target_example(model: torch.nn.Module, tok: Any, text: str, targets: list[str]) -> None:
    print(f"## target_scoring word: {text!r}, targets {targets}")
    original = tok(text)["input_ids"]
    p = original.index(tok.mask_token_id)
    for target in targets:
        filled = tok(text.replace(tok.mask_token, target))["input_ids"]
        n = len(filled) - len(original) + 1
        pieces = filled[p : p + n]
        ids = original[:p] + [tok.mask_token_id] * n + original[p + 1 :]
        steps = []
        for i in range(n):
            current = list(ids)
            current[p : p + i] = pieces[:i]
            steps.append(float(probs(model, current, p + i)[pieces[i]]))
        names = tok.convert_ids_to_tokens(pieces)
        chain = " x ".join(f"p({name})={s:.6g}" for name, s in zip(names, steps, strict=True))
        print(f"  {target}: pieces {names} {pieces}: {chain} -> P = {math.prod(steps):.6g}")


def beam(model: torch.nn.Module, ids: list[int], positions: list[int], width: int, allowed: list) -> list:
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    for step, position in enumerate(positions):
        grown = []
        for tokens, logprob in beams:
            current = list(ids)
            for q, t in zip(positions, tokens, strict=False):
                current[q] = t
            pr = probs(model, current, position)
            if allowed[step] is not None:
                pr = torch.where(allowed[step], pr, torch.tensor(-1.0))
            values, indices = pr.topk(width)
            for v, i in zip(values.tolist(), indices.tolist(), strict=True):
                grown.append(([*tokens, i], logprob + math.log(v)))
        grown.sort(key=lambda b: -b[1])
        beams = grown[:width]
    return beams


def whole_word_example(
    model: torch.nn.Module, tok: Any, text: str, n_max: int, width: int, top_k: int
) -> None:
    print(f"## whole_word: {text!r}, max_subwords {n_max}, num_beams {width}")
    vocab = tok.get_vocab()
    size = len(tok)
    marked = torch.zeros(size, dtype=torch.bool)
    usable = torch.zeros(size, dtype=torch.bool)
    for token, index in vocab.items():
        usable[index] = True
        marked[index] = token.startswith("##")
    usable[tok.all_special_ids] = False
    begins, continues = usable & ~marked, usable & marked
    original = tok(text)["input_ids"]
    p = original.index(tok.mask_token_id)
    hyps = []
    for n in range(1, n_max + 1):
        ids = original[:p] + [tok.mask_token_id] * n + original[p + 1 :]
        allowed = [begins] + [continues] * (n - 1)
        for tokens, logprob in beam(model, ids, list(range(p, p + n)), width, allowed):
            hyps.append((logprob / n, n, tokens, logprob))
            pieces = tok.convert_ids_to_tokens(tokens)
            print(f"  L={n}: {pieces} sum log p = {logprob:.5f}, mean = {logprob / n:.5f}")
    hyps.sort(key=lambda h: -h[0])
    print("  ranked:", ", ".join(f"{tok.decode(t)} {math.exp(m):.4f}" for m, _, t, _ in hyps[:top_k]))


def joint_example(model: torch.nn.Module, tok: Any, text: str, width: int, top_k: int) -> None:
    print(f"## decoding joint: {text!r}, num_beams {width}")
    ids = tok(text)["input_ids"]
    positions = [i for i, t in enumerate(ids) if t == tok.mask_token_id]
    for tokens, logprob in beam(model, ids, positions, width, [None] * len(positions))[:top_k]:
        pieces = tok.convert_ids_to_tokens(tokens)
        print(f"  {pieces} sum log p = {logprob:.5f} -> score {math.exp(logprob):.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    args = parser.parse_args()
    model = AutoModelForMaskedLM.from_pretrained(args.model).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    target_example(model, tok, "I drink [MASK] every morning.", ["coffee", "tea", "espresso"])
    whole_word_example(model, tok, "The weather today is [MASK].", 3, 3, 5)
    joint_example(model, tok, "[MASK] [MASK] is a city in california.", 5, 3)


if __name__ == "__main__":
    main()
