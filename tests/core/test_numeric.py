"""Softmax and top-k in numpy give torch's numbers and ranks (the pipeline's), with a fixed order for ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskserve.core.numeric import softmax, top_k


@pytest.mark.parametrize("shape", [(1, 7), (3, 1000), (5, 30522)])
def test_softmax_is_torchs(shape: tuple[int, int]) -> None:
    logits = np.random.default_rng(sum(shape)).normal(0, 4, size=shape).astype(np.float32)
    got = softmax(logits)
    want = torch.from_numpy(logits).softmax(dim=-1).numpy()
    exact = np.exp(logits.astype(np.float64) - logits.max(axis=-1, keepdims=True))
    exact /= exact.sum(axis=-1, keepdims=True)
    assert got.dtype == np.float32
    # Ours is the exact softmax to float32 rounding; torch's float32 sum drifts a little over a vocabulary.
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got, want, rtol=3e-5, atol=1e-9)


def test_softmax_of_large_logits_does_not_overflow() -> None:
    got = softmax(np.array([[1000.0, 999.0, -1000.0]], dtype=np.float32))
    assert np.isfinite(got).all()
    assert got[0, 0] > got[0, 1] > got[0, 2] >= 0


@pytest.mark.parametrize("k", [1, 5, 17, 999, 1000])
def test_top_k_is_torchs_without_ties(k: int) -> None:
    values = np.random.default_rng(k).permutation(np.linspace(0, 1, 1000, dtype=np.float32)).reshape(1, -1)
    values = np.concatenate([values, values[:, ::-1]])
    got_values, got_indices = top_k(values, k)
    want_values, want_indices = torch.from_numpy(values).topk(k)
    np.testing.assert_array_equal(got_indices, want_indices.numpy())
    np.testing.assert_array_equal(got_values, want_values.numpy())
    assert got_indices.dtype == np.int64


def test_ties_keep_the_lower_id_first_across_the_cut() -> None:
    values = np.array([[0.1, 0.5, 0.3, 0.5, 0.3, 0.3, 0.0]], dtype=np.float32)
    assert top_k(values, 4)[1].tolist() == [[1, 3, 2, 4]]
    assert top_k(values, 7)[1].tolist() == [[1, 3, 2, 4, 5, 0, 6]]
    assert top_k(values, 9)[1].shape == (1, 7)  # capped at the row
    assert top_k(values, 0)[1].shape == (1, 0)
