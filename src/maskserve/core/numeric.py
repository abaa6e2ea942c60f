"""Softmax and top-k over logits rows, in numpy: the serving path of the ONNX Runtime and OpenVINO backends
never imports torch (a CPU image with prepared exports ships without it, and starts faster).

The numbers are the pipeline's to within its own rounding: float32 ``exp`` of the logits less the row's
maximum, as torch's CPU softmax computes it, but summed in float64, so over a 30k-word vocabulary the
result is the exact softmax rounded to float32, where torch's float32 sum drifts by up to ~1e-5 of a
probability (measured against float64; tests/core/test_numeric.py). Ranks are by
probability, highest first; equal probabilities keep the lower token id first (torch's top-k leaves that
order unspecified; a fixed one makes answers repeatable).
"""

from __future__ import annotations

import numpy as np

from maskserve.domain import Float32Array, Int64Array


def softmax(logits: Float32Array) -> Float32Array:
    """Softmax over the last axis, float32."""
    x = np.asarray(logits, dtype=np.float32)
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    total = shifted.sum(axis=-1, keepdims=True, dtype=np.float64)
    out: Float32Array = (shifted / total).astype(np.float32)
    return out


def top_k(values: Float32Array, k: int) -> tuple[Float32Array, Int64Array]:
    """The ``k`` largest entries of each row of a 2-D array and their indices, largest first."""
    rows, width = values.shape
    k = max(0, min(k, width))
    if k == 0:
        return np.empty((rows, 0), dtype=values.dtype), np.empty((rows, 0), dtype=np.int64)
    if k < width:
        # A partition finds the k largest (ties at the boundary resolved below), then only they are sorted.
        part = np.argpartition(-values, k - 1, axis=-1)[:, :k]
        kth = np.take_along_axis(values, part, axis=-1).min(axis=-1, keepdims=True)
        indices = np.empty((rows, k), dtype=np.int64)
        for row in range(rows):
            # Every entry above the k-th value, then the lowest ids among those equal to it.
            above = np.flatnonzero(values[row] > kth[row])
            equal = np.flatnonzero(values[row] == kth[row])[: k - len(above)]
            indices[row] = np.concatenate([above, equal])
    else:
        indices = np.broadcast_to(np.arange(width, dtype=np.int64), (rows, width)).copy()
    picked = np.take_along_axis(values, indices, axis=-1)
    # Stable sort on the negated values: largest first, equal values by lower id (indices are ascending
    # within each tie group before the sort).
    order = np.argsort(-picked, axis=-1, kind="stable")
    indices = np.take_along_axis(indices, order, axis=-1)
    return np.take_along_axis(values, indices, axis=-1), indices
