"""Quality and cost of the word options (docs/words.md) against the pipeline's token answers, on a model
with real weights and sentences from WordNet's usage examples (Debian's wordnet-base, read offline).

    apt-get install wordnet-base
    python benchmarks/words_quality.py ../shared/models/minilm-l6-mlm-demo --sentences 300

Three measurements, each over sentences the script builds with a fixed seed:
- targets: a word of 2+ pieces is masked; the candidates are that word and 9 other multi-piece words of the
  set. How often the gold word ranks first with target_scoring "word" against "first_token".
- fills: a word is masked; exact match of the top answer with whole_word against the pipeline's top token,
  for words of 2+ pieces and for all words.
- joint: two adjacent one-piece words are masked; exact match of both with decoding "joint" against the
  pipeline's independent top-1s.
Then the cost: sentences per second for each mode against a plain one-mask request, in one run, through
the engine (the shared batcher, 8 requests in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskserve.config import Settings
from maskserve.core.context import RequestContext
from maskserve.core.engine import Engine
from maskserve.core.repository import load_engine
from maskserve.params import FillMaskParams

WORDNET = Path("/usr/share/wordnet")
SEED = 20261204


def wordnet_sentences(limit: int) -> list[str]:
    """WordNet's usage examples: the quoted sentences after the glosses, 6 to 25 words, lower case."""
    found: list[str] = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (WORDNET / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines():
            for example in re.findall(r'"([^"]+)"', line.partition("|")[2]):
                words = example.split()
                if 6 <= len(words) <= 25 and example.isascii():
                    found.append(example.strip().lower())
    unique = sorted(set(found))
    random.Random(SEED).shuffle(unique)
    return unique[: limit * 20]


def _words(sentence: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in re.finditer(r"[a-z]{3,}", sentence)]


def pieces(engine: Engine, word: str) -> int:
    return len(engine.encoder.tokenizer(" " + word, add_special_tokens=False)["input_ids"])


def masked(sentence: str, start: int, end: int, mask: str) -> str:
    return sentence[:start] + mask + sentence[end:]


def build_sets(engine: Engine, sentences: Sequence[str], n: int) -> dict[str, list[Any]]:
    rng = random.Random(SEED)
    mask = engine.info.mask_token
    multi: list[tuple[str, str]] = []
    any_word: list[tuple[str, str, int]] = []
    pairs: list[tuple[str, tuple[str, str]]] = []
    for sentence in sentences:
        words = _words(sentence)
        if not words:
            continue
        start, end, word = rng.choice(words)
        count = pieces(engine, word)
        any_word.append((masked(sentence, start, end, mask), word, count))
        if count > 1:
            multi.append((masked(sentence, start, end, mask), word))
        for (s1, e1, w1), (s2, e2, w2) in itertools.pairwise(words):
            if sentence[e1:s2] == " " and pieces(engine, w1) == 1 and pieces(engine, w2) == 1:
                pairs.append((sentence[:s1] + f"{mask} {mask}" + sentence[e2:], (w1, w2)))
                break
    vocabulary = sorted({w for _, w in multi})
    targets = []
    for text, gold in multi[:n]:
        others = rng.sample([w for w in vocabulary if w != gold], 9)
        targets.append((text, gold, [gold, *others]))
    return {"targets": targets, "fills": any_word[:n], "pairs": pairs[:n]}


async def _first(engine: Engine, text: str, params: FillMaskParams) -> Any:
    (result,) = await engine.fill_mask([text], params, RequestContext(use_cache=False))
    return result


async def quality(engine: Engine, sets: dict[str, list[Any]]) -> None:
    ranks = {"word": 0, "first_token": 0}
    for text, gold, candidates in sets["targets"]:
        for scoring in ranks:
            params = FillMaskParams(top_k=1, targets=tuple(candidates), target_scoring=scoring)  # type: ignore[arg-type]
            top = (await _first(engine, text, params))[0][0]
            if scoring == "word":
                ranks[scoring] += top.token_str == gold
            else:  # the pipeline answers a piece: counted right when it is the gold word's (ties included)
                gold_ids, _ = engine.encoder.target_ids([gold])
                ranks[scoring] += top.token == int(gold_ids[0])
    n = len(sets["targets"])
    print(f"targets ({n} sentences, gold word of 2+ pieces among 10 candidates), gold ranked first:")
    print(f"  target_scoring word        {ranks['word'] / n:6.1%}")
    print(f"  target_scoring first_token {ranks['first_token'] / n:6.1%}")

    hits = {"whole_word": [0, 0], "pipeline": [0, 0]}
    multi = 0
    for text, gold, count in sets["fills"]:
        ww = (await _first(engine, text, FillMaskParams(top_k=1, whole_word=True)))[0][0].token_str
        pl = (await _first(engine, text, FillMaskParams(top_k=1)))[0][0].token_str
        multi += count > 1
        for key, answer in (("whole_word", ww), ("pipeline", pl)):
            hits[key][0] += answer == gold
            hits[key][1] += answer == gold and count > 1
    n = len(sets["fills"])
    print(f"fills ({n} sentences, {multi} with a masked word of 2+ pieces), exact match of the top answer:")
    for key, (all_words, multi_words) in hits.items():
        share = multi_words / max(multi, 1)
        print(f"  {key:<11} all words {all_words / n:6.1%}   words of 2+ pieces {share:6.1%}")

    joint = independent = 0
    for text, (w1, w2) in sets["pairs"]:
        best = (await _first(engine, text, FillMaskParams(top_k=1, decoding="joint")))[0][0]
        joint += tuple(best.token_strs) == (w1, w2)
        per_mask = await _first(engine, text, FillMaskParams(top_k=1))
        independent += (per_mask[0][0].token_str, per_mask[1][0].token_str) == (w1, w2)
    n = len(sets["pairs"])
    print(f"joint ({n} sentences, two adjacent one-piece words masked), both words exact:")
    print(f"  decoding joint       {joint / n:6.1%}")
    print(f"  decoding independent {independent / n:6.1%}")


async def _rate(engine: Engine, texts: Sequence[str], params: FillMaskParams, clients: int = 8) -> float:
    queue = list(texts)

    async def client() -> None:
        while queue:
            await engine.fill_mask([queue.pop()], params, RequestContext(use_cache=False))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(texts) / (time.perf_counter() - started)


async def cost(engine: Engine, sets: dict[str, list[Any]]) -> None:
    one = [t for t, _, _ in sets["fills"]]
    two = [t for t, _ in sets["pairs"]]
    targets = [(t, c) for t, _, c in sets["targets"]]
    print("cost, sentences/s through the engine (8 requests in flight):")
    rows = [
        ("plain one-mask request (pipeline)", one, FillMaskParams()),
        ("whole_word, max_subwords 3, 5 beams", one, FillMaskParams(whole_word=True)),
        ("plain two-mask request (pipeline)", two, FillMaskParams()),
        ("decoding joint, two masks, 5 beams", two, FillMaskParams(decoding="joint")),
    ]
    base = None
    for name, texts, params in rows:
        rate = await _rate(engine, texts, params)
        base = base or rate
        print(f"  {name:<40} {rate:7.1f}  ({rate / base:.2f}x the plain one-mask rate)")
    for scoring in ("first_token", "word"):
        params_of = {t: FillMaskParams(targets=tuple(c), target_scoring=scoring) for t, c in targets}  # type: ignore[arg-type]
        started = time.perf_counter()
        queue = list(params_of)

        async def client(todo: list[str] = queue, params: dict[str, FillMaskParams] = params_of) -> None:
            while todo:
                text = todo.pop()
                await engine.fill_mask([text], params[text], RequestContext(use_cache=False))

        await asyncio.gather(*(client() for _ in range(8)))
        rate = len(params_of) / (time.perf_counter() - started)
        print(f"  {'10 targets, target_scoring ' + scoring:<40} {rate:7.1f}  ({rate / base:.2f}x)")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--backend", default="torch")
    args = parser.parse_args()
    engine = load_engine(Settings(model=args.model, backend=args.backend, log_level="warning"))
    sets = build_sets(engine, wordnet_sentences(args.sentences), args.sentences)
    await quality(engine, sets)
    await cost(engine, sets)
    await engine.aclose()


if __name__ == "__main__":
    asyncio.run(main())
