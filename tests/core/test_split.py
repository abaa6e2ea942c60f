from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from maskserve.core.split import length_runs
from support.engines import engine_for


def _cost(lengths: list[int], runs: list[list[int]], per_call: int) -> int:
    return sum(len(run) * max(lengths[i] for i in run) + per_call for run in runs)


def _best_by_brute_force(lengths: list[int], per_call: int) -> int:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = None
    # Every way to cut the sorted order into contiguous runs.
    for cuts in itertools.product([False, True], repeat=len(order) - 1):
        runs, current = [], [order[0]]
        for cut, index in zip(cuts, order[1:], strict=True):
            if cut:
                runs.append(current)
                current = []
            current.append(index)
        runs.append(current)
        cost = _cost(lengths, runs, per_call)
        best = cost if best is None else min(best, cost)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(20))
def test_split_is_optimal_and_covers_every_item(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(5, 60) for _ in range(rng.randint(1, 10))]
    per_call = rng.choice([0, 8, 24, 100])
    runs = length_runs(lengths, per_call)
    assert sorted(i for run in runs for i in run) == list(range(len(lengths)))
    for run in runs:
        assert [lengths[i] for i in run] == sorted(lengths[i] for i in run)
    assert _cost(lengths, runs, per_call) == _best_by_brute_force(lengths, per_call)


def test_equal_lengths_stay_one_call_and_far_apart_lengths_split() -> None:
    assert length_runs([20] * 16, 24) == [list(range(16))]
    runs = length_runs([10] * 8 + [100] * 8, 24)
    assert [sorted(r) for r in runs] == [list(range(8)), list(range(8, 16))]
    assert length_runs([], 24) == []


def test_split_batch_gives_the_same_logits_as_one_call(bert_dir: Path) -> None:
    engine = engine_for(bert_dir)
    texts = ["a [MASK] ."] * 3 + ["the " * 40 + "[MASK] [MASK] end"] * 2 + ["[MASK] " + "word " * 20]
    items = engine.encoder.encode(texts)
    assert len(length_runs([it.length for it in items])) > 1, "the case must exercise a split"
    whole = engine.backend.mask_logits(engine.encoder.pad(items))
    split = engine._run_batch(items)
    assert split.shape == whole.shape
    np.testing.assert_allclose(split, whole, rtol=1e-4, atol=1e-4)
