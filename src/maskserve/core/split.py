"""Split one padded batch into runs of similar length when that saves compute on a CPU.

On a CPU an encoder's cost is almost linear in padded tokens (rows x longest row), so a batch of 16
sentences of 10 to 30 tokens wastes about a quarter of its work on padding. Running it as a few calls,
each over sentences of similar length, removes most of that, but every call also has a fixed cost and
smaller matrices run a little slower. :func:`length_runs` picks the split with the least total cost
under that model: the sum over calls of ``rows x longest + per_call_tokens``. On a GPU padding is nearly
free and one large call is best, so the engine only splits on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from maskserve.domain import EncodedText, Float32Array

# The fixed cost of one extra model call, in padded tokens. Fitted on a 2-core AVX-512 machine with a
# bert-base-sized model and 16-sentence batches of 10-30 tokens (docs/benchmarks.md): 24 gave +6 % fp32
# and +14 % int8 over one call; 96 already gave back most of that.
DEFAULT_PER_CALL_TOKENS = 24


def length_runs(lengths: Sequence[int], per_call_tokens: int = DEFAULT_PER_CALL_TOKENS) -> list[list[int]]:
    """Indices of ``lengths`` grouped into contiguous runs of the length order, cheapest split first.

    Optimal for the cost model by dynamic programming over the sorted lengths (O(n^2), n is a batch).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    if n == 0:
        return []
    # best[j]: least cost of the first j sorted items; cut[j]: where the last run of that split starts.
    best = [0] + [0] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]
        best[j], cut[j] = min((best[i] + (j - i) * longest + per_call_tokens, i) for i in range(j))
    runs: list[list[int]] = []
    j = n
    while j > 0:
        runs.append(order[cut[j] : j])
        j = cut[j]
    runs.reverse()
    return runs


def split_by_masks(items: Sequence[EncodedText], logits: Float32Array) -> list[Float32Array]:
    """The rows of ``logits`` (one per mask, items in order) that belong to each item."""
    out: list[Float32Array] = []
    start = 0
    for item in items:
        end = start + len(item.mask_positions)
        out.append(logits[start:end])
        start = end
    return out
