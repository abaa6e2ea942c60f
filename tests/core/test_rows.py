"""What batcher items ask back: whole rows, or the log-probability of given ids, computed on the model
thread; one batch serves both."""

from __future__ import annotations

import numpy as np
import torch

from maskserve.core.batcher import Batcher, BatchLimits
from maskserve.core.rows import FULL_ROWS, LogProbsAt
from maskserve.domain import EncodedText


def test_log_probs_at_equal_torch_log_softmax() -> None:
    logits = np.random.default_rng(0).normal(size=(3, 50)).astype(np.float32) * 8
    ids = (4, 0, 49)
    want = torch.log_softmax(torch.from_numpy(logits).double(), dim=-1)[torch.arange(3), torch.tensor(ids)]
    np.testing.assert_allclose(LogProbsAt(ids).take(logits), want.numpy(), atol=1e-12)
    assert FULL_ROWS.take(logits) is logits


async def test_one_batch_serves_rows_and_log_probabilities() -> None:
    vocab = 7

    def run(items: list[EncodedText]) -> np.ndarray:
        rows = [
            np.arange(vocab, dtype=np.float32) + it.input_ids[0] for it in items for _ in it.mask_positions
        ]
        return np.stack(rows)

    batcher = Batcher(run, BatchLimits(max_delay_s=0))
    try:
        items = [EncodedText((1, 2), (1,)), EncodedText((5, 6, 7), (1, 2))]
        full, scored = await batcher.submit(items, [FULL_ROWS, LogProbsAt((3, 6))])
        assert batcher.stats.batches == 1
        np.testing.assert_array_equal(full, [np.arange(vocab) + 1])
        assert scored.shape == (2,)
        np.testing.assert_allclose(scored, LogProbsAt((3, 6)).take(np.stack([np.arange(vocab) + 5.0] * 2)))
    finally:
        await batcher.close()
