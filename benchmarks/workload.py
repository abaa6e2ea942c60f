"""Seeded English sentences of 8-24 words with exactly one mask token, for fill-mask benchmarks.

Import ``sentences(n, seed, mask)`` or print samples: ``python benchmarks/workload.py -n 5 --mask "<mask>"``.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics

MIN_WORDS = 8
MAX_WORDS = 24

SUBJECTS = (
    "the teacher", "my neighbor", "a young doctor", "the old farmer", "our manager", "the little girl",
    "his older brother", "the new student", "a local artist", "the city council", "the company",
    "my grandmother", "the pilot", "a famous writer", "the police officer", "her best friend", "the chef",
    "the team captain", "the scientist", "a tired nurse", "the mayor", "my uncle", "the museum guide",
    "a group of tourists", "the shop owner", "the engineer", "our landlord", "the quiet boy",
)  # fmt: skip
VERBS = (
    "bought", "painted", "found", "repaired", "visited", "cleaned", "borrowed", "sold", "described",
    "opened", "carried", "cooked", "wrote", "read", "watched", "built", "lost", "ordered", "delivered",
    "photographed", "measured", "moved", "checked", "returned", "designed", "locked", "washed", "noticed",
)  # fmt: skip
OBJECTS = (
    "a red bicycle", "the wooden table", "an old map", "the kitchen window", "a long letter",
    "the broken radio", "some fresh bread", "a small boat", "the new library", "a blue umbrella",
    "the garden fence", "a cup of coffee", "the morning newspaper", "a birthday cake",
    "the empty classroom", "a heavy suitcase", "the last train ticket", "a pair of leather shoes",
    "the front door", "a box of old photographs", "the village church", "a bottle of olive oil",
    "the school bus", "a warm winter coat", "the stone bridge", "a basket of apples",
)  # fmt: skip
ADVERBIALS = (
    "yesterday morning", "after lunch", "in the park", "before the storm", "on a quiet street",
    "last weekend", "near the river", "at the end of the day", "during the long summer",
    "in the middle of the night", "without any help", "with great care", "for the first time",
    "at the train station", "early on sunday", "behind the old market", "two days ago",
    "in front of the hospital", "after the football match", "on the way to work",
)  # fmt: skip
OPENERS = (
    "last week,", "every morning,", "according to the report,", "after the meeting,",
    "in the small village,", "surprisingly,", "later that evening,", "despite the rain,",
    "as usual,", "on his birthday,", "for some reason,", "at first,",
)  # fmt: skip
REASONS = (
    "it was cheaper than expected", "the weather was perfect", "nobody else wanted to do it",
    "the old one had stopped working", "the family needed it", "the shop was closing soon",
    "the children asked for it", "it was raining all day", "the boss said it was urgent",
)  # fmt: skip
TRAILERS = (
    "while the children were playing outside", "so that everyone could see it",
    "before anyone else arrived", "and nobody said a word", "although it was very late",
    "as the sun was going down",
)  # fmt: skip
TEMPLATES = (
    "{S} {V} {O} {A}.",
    "{P} {S} {V} {O} {A}.",
    "{S} {V} {O} because {R}.",
    "{P} {S} {V} {O} {A} because {R}.",
    "{S} said that {S2} {V} {O} {A}.",
    "{S} {V} {O} {A} and then {V2} {O2}.",
    "{S} {V} {O} {A}, {T}.",
    "{P} {S} {V} {O}, {T}.",
)

_FUNCTION_WORDS = frozenset({"the", "and", "then", "that", "for", "was", "were", "with", "because", "some"})
_WORD = re.compile(r"^([A-Za-z][A-Za-z'-]*)(\W*)$")


def _sentence(rng: random.Random) -> str:
    text = rng.choice(TEMPLATES).format(
        S=rng.choice(SUBJECTS),
        S2=rng.choice(SUBJECTS),
        V=rng.choice(VERBS),
        V2=rng.choice(VERBS),
        O=rng.choice(OBJECTS),
        O2=rng.choice(OBJECTS),
        A=rng.choice(ADVERBIALS),
        P=rng.choice(OPENERS),
        R=rng.choice(REASONS),
        T=rng.choice(TRAILERS),
    )
    return text[0].upper() + text[1:]


def _mask_one(text: str, rng: random.Random, mask: str) -> str:
    words = text.split()
    # Mask a content word, never the first one (capitalised), keeping its punctuation.
    candidates: list[tuple[int, re.Match[str]]] = []
    for i, word in enumerate(words[1:], start=1):
        found = _WORD.match(word)
        if found and len(found.group(1)) >= 3 and found.group(1).lower() not in _FUNCTION_WORDS:
            candidates.append((i, found))
    index, match = rng.choice(candidates)
    words[index] = mask + match.group(2)
    return " ".join(words)


def sentences(n: int, seed: int = 0, mask: str = "[MASK]") -> list[str]:
    """``n`` sentences of 8-24 words, each with exactly one ``mask``; the same for the same seed."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        text = _sentence(rng)
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            out.append(_mask_one(text, rng, mask))
    return out


def plain_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` whole sentences of 8-24 words (no mask), for sentence scores; the same for the same seed."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        text = _sentence(rng)
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
            out.append(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("-n", type=int, default=10, help="how many sentences (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--mask", default="[MASK]", help='mask token, e.g. "[MASK]" or "<mask>"')
    parser.add_argument("--stats", action="store_true", help="print word-count statistics instead")
    args = parser.parse_args()
    texts = sentences(args.n, args.seed, args.mask)
    if args.stats:
        counts = [len(t.split()) for t in texts]
        mean = statistics.mean(counts)
        print(f"{len(texts)} sentences, words min {min(counts)} mean {mean:.1f} max {max(counts)}")
        return
    print("\n".join(texts))


if __name__ == "__main__":
    main()
