"""Answers that would outgrow a transport's limit are refused before any compute, naming the flag.

A KServe answer with --return_probabilities or --return_logits holds one number per vocabulary entry per
mask: about 0.9 MB per mask on bert-base's 30,522 entries, so nine inputs pass gRPC's default 8 MiB
message limit, and 256 inputs make a 230 MB HTTP body. gRPC would fail such an answer only after computing
it, with a message that names no flag; HTTP had no bound at all.

The estimate is an upper bound, so an answer that passes the check fits: per vocabulary entry, the id as a
quoted JSON key (its digits, two quotes, a colon and a comma; over HTTP the quotes count twice, since V2
REST carries each input's object as a JSON string inside the JSON answer) and the longest text a float
takes (23 characters: "-1.1754943508222875e-38"). It exceeds the real size by about 10 % on bert-base.
Candidate lists (top_k, targets) are bounded in the same spirit: per candidate the fixed keys, the score,
the id, the token and the filled-in sequence, counted at twice the input's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from maskserve.errors import AnswerTooLarge

# Longest JSON text of one float (a float32 widened to a double, as the answers carry them).
_FLOAT_CHARS = 23
# '"' + id + '":' + value + ','; the quotes are escaped again inside a V2 REST BYTES string (JSON in JSON).
_ENTRY_OVERHEAD = 4
_ESCAPED_QUOTES = 2
# {"score":...,"token":...,"token_str":"...","sequence":"..."} around the values, escaped inside V2.
_CANDIDATE_OVERHEAD = 80
# Around each input's answer: brackets, separators, the V2 tensor's wrapping per element.
_PER_INPUT = 64


@dataclass(frozen=True)
class AnswerLimit:
    """The largest answer a transport can carry, and the flag that sets it. ``json_in_json``: the transport
    may carry an input's answer as a JSON string inside JSON (V2 REST), escaping its quotes once more; gRPC
    carries it as bytes."""

    max_bytes: int
    flag: str
    json_in_json: bool = True


@lru_cache(maxsize=16)
def distribution_bytes(vocab_size: int, json_in_json: bool = True) -> int:
    """Upper bound of one mask's token-id -> number object, in bytes."""
    digits = sum(len(str(i)) for i in range(vocab_size))
    per_entry = _FLOAT_CHARS + _ENTRY_OVERHEAD + (_ESCAPED_QUOTES if json_in_json else 0)
    return digits + vocab_size * per_entry + 2


def distributions_bytes(mask_counts: Sequence[int], vocab_size: int, json_in_json: bool = True) -> int:
    per_mask = distribution_bytes(vocab_size, json_in_json)
    return sum(max(1, masks) * per_mask + _PER_INPUT for masks in mask_counts)


def candidates_bytes(texts: Sequence[str], mask_counts: Sequence[int], top_k: int, longest_token: int) -> int:
    """Upper estimate of the pipeline-shaped candidate lists for these inputs."""
    per_candidate = _CANDIDATE_OVERHEAD + _FLOAT_CHARS + 20 + longest_token
    return sum(
        max(1, masks) * top_k * (per_candidate + 2 * len(text.encode("utf-8"))) + _PER_INPUT
        for text, masks in zip(texts, mask_counts, strict=True)
    )


def check(estimate: int, limit: AnswerLimit, inputs: int) -> None:
    if estimate <= limit.max_bytes:
        return
    raise AnswerTooLarge(
        f"the answer to these {inputs} input(s) would be up to {_size(estimate)}, over the "
        f"{_size(limit.max_bytes)} that {limit.flag} allows; send fewer inputs (or masks, or a smaller "
        f"top_k) per request, or raise {limit.flag}"
    )


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB ({n} bytes)"
    return f"{n} bytes"
