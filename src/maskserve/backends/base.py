"""The backend interface every runtime (torch, ONNX Runtime) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from maskserve.domain import Float32Array, Int64Array


@dataclass(frozen=True)
class EncodedBatch:
    """A padded batch. ``mask_rows[i], mask_cols[i]`` is the i-th mask position in the batch."""

    input_ids: Int64Array
    attention_mask: Int64Array
    token_type_ids: Int64Array | None
    mask_rows: Int64Array
    mask_cols: Int64Array

    @property
    def padded_tokens(self) -> int:
        return int(self.input_ids.shape[0] * self.input_ids.shape[1])


class Backend(Protocol):
    name: str
    vocab_size: int
    dtype: str
    device: str

    def mask_logits(self, batch: EncodedBatch) -> Float32Array:
        """Return float32 logits of shape [len(batch.mask_rows), vocab_size]."""
        ...
