"""ONNX Runtime sessions for the graphs :mod:`maskserve.backends.onnx_export` builds, and the probe
batches those graphs are checked on."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from maskserve.backends.base import EncodedBatch
from maskserve.domain import Float32Array

OUTPUT = "logits"
# ONNX Runtime's fused SkipLayerNormalization and BiasGelu CPU kernels are slower than the Add +
# LayerNormalization and Add + Gelu they replace (3.7x and 1.2x on [5, 23, width], one thread, ORT 1.31);
# unfused, a bert-base call is 5-11 % faster. Neither the file nor the session fuses them
# (benchmarks/ort_fusions.py, docs/benchmarks.md).
_SLOW_FUSIONS = ("SkipLayerNormFusion", "BiasGeluFusion")


class _DropPreprocessingHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def quiet_ort_logs() -> Iterator[None]:
    """Silence ORT's optimizer and quantizer chatter for one build step.

    Both log every node they touch at INFO (the quantizer on the root logger), and the quantizer warns to
    "run pre-processing", which the transformer optimizer has already done. This runs while the model
    loads, before anything is served, so the process-wide ``logging.disable`` touches nothing else.
    """
    previous = logging.root.manager.disable
    hint = _DropPreprocessingHint()
    logging.disable(max(previous, logging.INFO))
    logging.getLogger().addFilter(hint)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(hint)
        logging.disable(previous)


def session(ort: Any, model: Path, threads: int, *, level: str = "ORT_ENABLE_ALL", spin: bool = True) -> Any:
    """``spin``: whether idle intra-op threads spin waiting for work (ONNX Runtime's default). With several
    models in one process each has its own pool, and spinning threads of one take cores from another."""
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(model),
        sess_options=options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(_SLOW_FUSIONS),
    )


def graph_feed(batch: EncodedBatch, inputs: Collection[str]) -> dict[str, np.ndarray]:
    """The exported graph's feed for ``batch``: int64, contiguous, token types zero where the tokenizer has
    none, less any input the exporter pruned because the model never reads it (DeBERTa-v2's token types)."""
    ids = np.ascontiguousarray(batch.input_ids, dtype=np.int64)
    types = batch.token_type_ids
    feed = {
        "input_ids": ids,
        "attention_mask": np.ascontiguousarray(batch.attention_mask, dtype=np.int64),
        "token_type_ids": np.zeros_like(ids) if types is None else np.ascontiguousarray(types, np.int64),
        "mask_rows": np.ascontiguousarray(batch.mask_rows, dtype=np.int64),
        "mask_cols": np.ascontiguousarray(batch.mask_cols, dtype=np.int64),
    }
    return {name: value for name, value in feed.items() if name in inputs}


def probe_feed(vocab_size: int, token_types: bool, *, batch: int, length: int) -> dict[str, np.ndarray]:
    """A padded batch with masks in every row; the rows get shorter towards the end of the batch."""
    rng = np.random.default_rng(batch * 1000 + length)
    ids = rng.integers(0, vocab_size, size=(batch, length), dtype=np.int64)
    attention = np.ones((batch, length), dtype=np.int64)
    for row in range(1, batch):
        attention[row, length - 2 * row :] = 0
    rows = np.repeat(np.arange(batch, dtype=np.int64), 2)
    cols = np.array([c for row in range(batch) for c in (1, max(1, length - 2 * row - 2))], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": attention}
    if token_types:
        feed["token_type_ids"] = np.zeros_like(ids)
    feed["mask_rows"], feed["mask_cols"] = rows, cols
    return feed


def run(sess: Any, feed: dict[str, np.ndarray]) -> Float32Array:
    """Logits for ``feed``, less any input the exporter pruned because the model never reads it."""
    names = {item.name for item in sess.get_inputs()}
    out: Float32Array = sess.run([OUTPUT], {k: v for k, v in feed.items() if k in names})[0]
    return out


def close(got: Float32Array, want: Float32Array, tolerance: float) -> tuple[bool, float]:
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    return got.shape == want.shape and diff <= tolerance * scale, diff
