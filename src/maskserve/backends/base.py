"""The contract every engine (torch, ONNX Runtime) implements, and the options each is loaded with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class BackendOptions:
    """How to load a model into a backend; each backend reads what applies to it and refuses what it cannot
    do (ONNX Runtime on CUDA, say) with a ValueError."""

    device: str = "auto"
    dtype: str = "auto"
    quantize: str | None = None
    # Intra-op threads of each model worker; None: the usable cores.
    threads: int | None = None
    # Batches run at once (--model_workers), each on its own thread; an engine with streams gets one each.
    workers: int = 1
    trust_remote_code: bool = False
    # Where built graphs are kept (None: the default cache), and int8's calibration text (None: packaged).
    cache_dir: Path | None = None
    calibration: Path | None = None
    # Whether idle threads may spin waiting for work: off where several models share the cores.
    spin: bool = True


class Backend(Protocol):
    name: str
    vocab_size: int
    dtype: str
    device: str

    @property
    def splits_by_length(self) -> bool:
        """Whether padding costs compute, so a batch of mixed lengths runs faster as a few calls over similar
        lengths (a CPU); on a GPU padding is nearly free and one call is best."""
        ...

    def mask_logits(self, batch: EncodedBatch) -> Float32Array:
        """Return float32 logits of shape [len(batch.mask_rows), vocab_size]."""
        ...
