"""The worked examples of docs/words.md, computed with plain transformers forward passes (no maskserve
code), so the definitions can be checked by hand against a second implementation.

    python benchmarks/words_examples.py ../shared/models/minilm-l6-mlm-demo
"""

from __future__ import annotations

import argparse
import math

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer


def probs(model: torch.nn.Module, ids: list[int], position: int) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, position].softmax(-1)


def target_example(model: torch.nn.Module, tok: object, text: str, targets: list[str]) -> None:
    print(f"## target_scoring word: {text!r}, targets {targets}")
    original = tok(text)["input_ids"]  # type: ignore[operator]
    p = original.index(tok.mask_token_id)  # type: ignore[attr-defined]
    for target in targets:
        filled = tok(text.replace(tok.mask_token, target))["input_ids"]  # type: ignore[attr-defined, operator]
        n = len(filled) - len(original) + 1
        pieces = filled[p : p + n]
        ids = original[:p] + [tok.mask_token_id] * n + original[p + 1 :]  # type: ignore[attr-defined]
        steps = []
        for i in range(n):
            current = list(ids)
            current[p : p + i] = pieces[:i]
            steps.append(float(probs(model, current, p + i)[pieces[i]]))
        names = tok.convert_ids_to_tokens(pieces)  # type: ignore[attr-defined]
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
            grown += [([*tokens, i], logprob + math.log(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]
        grown.sort(key=lambda b: -b[1])
        beams = grown[:width]
    return beams


def whole_word_example(model: torch.nn.Module, tok: object, text: str, n_max: int, width: int, top_k: int) -> None:
    print(f"## whole_word: {text!r}, max_subwords {n_max}, num_beams {width}")
    vocab = tok.get_vocab()  # type: ignore[attr-defined]
    size = len(tok)  # type: ignore[arg-type]
    marked = torch.zeros(size, dtype=torch.bool)
    usable = torch.zeros(size, dtype=torch.bool)
    for token, index in vocab.items():
        usable[index] = True
        marked[index] = token.startswith("##")
    usable[tok.all_special_ids] = False  # type: ignore[attr-defined]
    begins, continues = usable & ~marked, usable & marked
    original = tok(text)["input_ids"]  # type: ignore[operator]
    p = original.index(tok.mask_token_id)  # type: ignore[attr-defined]
    hyps = []
    for n in range(1, n_max + 1):
        ids = original[:p] + [tok.mask_token_id] * n + original[p + 1 :]  # type: ignore[attr-defined]
        for tokens, logprob in beam(model, ids, list(range(p, p + n)), width, [begins] + [continues] * (n - 1)):
            hyps.append((logprob / n, n, tokens, logprob))
            print(f"  L={n}: {tok.convert_ids_to_tokens(tokens)} sum log p = {logprob:.5f}, mean = {logprob / n:.5f}")  # type: ignore[attr-defined]
    hyps.sort(key=lambda h: -h[0])
    print("  ranked:", ", ".join(f"{tok.decode(t)} {math.exp(m):.4f}" for m, _, t, _ in hyps[:top_k]))  # type: ignore[attr-defined]


def joint_example(model: torch.nn.Module, tok: object, text: str, width: int, top_k: int) -> None:
    print(f"## decoding joint: {text!r}, num_beams {width}")
    ids = tok(text)["input_ids"]  # type: ignore[operator]
    positions = [i for i, t in enumerate(ids) if t == tok.mask_token_id]  # type: ignore[attr-defined]
    for tokens, logprob in beam(model, ids, positions, width, [None] * len(positions))[:top_k]:
        print(f"  {tok.convert_ids_to_tokens(tokens)} sum log p = {logprob:.5f} -> score {math.exp(logprob):.5f}")  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    args = parser.parse_args()
    model = AutoModelForMaskedLM.from_pretrained(args.model).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    target_example(model, tok, "I drink [MASK] every morning.", ["coffee", "tea", "espresso"])
    whole_word_example(model, tok, "The weather today is [MASK].", 3, 3, 5)
    joint_example(model, tok, "[MASK] [MASK] is a city in california.", 5, 3)


if __name__ == "__main__":
    main()
