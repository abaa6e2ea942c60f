"""Backends called from several model workers at once must answer as they do one call at a time."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from maskserve.backends.base import Backend, EncodedBatch


def assert_concurrent_calls_match_serial(
    backend: Backend, batches: Sequence[EncodedBatch], *, workers: int = 3, rounds: int = 10
) -> None:
    want = [backend.mask_logits(batch) for batch in batches]
    # Every round starts each batch at once on its own thread; differing shapes make a mix-up visible.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in range(rounds):
            got = list(pool.map(backend.mask_logits, [*batches] * workers))
            for i, logits in enumerate(got):
                np.testing.assert_allclose(logits, want[i % len(batches)], atol=1e-5, rtol=0)
