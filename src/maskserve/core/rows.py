"""What a batcher item asks back from the model: the logits at its masks (fill-mask keeps whole rows, to
rank candidates) or the log-probability of one given id at each mask (a sentence score needs one number per
row). The reduction runs on the model's thread, beside the batch, so a task that needs one number per row
never carries a vocabulary of floats per row through the event loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from maskserve.domain import Float32Array

Float64Array = npt.NDArray[np.float64]


class Need(Protocol):
    def take(self, logits: Float32Array) -> Any:
        """The item's answer from its logits, [masks, vocab]."""
        ...


class _FullRows:
    def take(self, logits: Float32Array) -> Float32Array:
        return logits


# Logits over the whole vocabulary at every mask, [masks, vocab] float32.
FULL_ROWS: Need = _FullRows()


@dataclass(frozen=True)
class LogProbsAt:
    """Natural log-probability of ``ids[i]`` at the item's i-th mask: log softmax over the vocabulary, in
    float64 (so that sums over hundreds of tokens lose nothing), [masks] float64."""

    ids: tuple[int, ...]

    def take(self, logits: Float32Array) -> Float64Array:
        rows = logits.astype(np.float64)
        peak = rows.max(axis=1, keepdims=True)
        log_total = peak[:, 0] + np.log(np.exp(rows - peak).sum(axis=1))
        picked = rows[np.arange(len(self.ids)), np.asarray(self.ids, dtype=np.int64)]
        result: Float64Array = picked - log_total
        return result
