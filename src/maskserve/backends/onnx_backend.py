"""ONNX Runtime backend: the masked LM exported once (head at the masks only), cached, run on the CPU.

The graph takes ``input_ids, attention_mask, [token_type_ids], mask_rows, mask_cols`` (int64; dynamic
batch, sequence and mask counts) and returns float32 ``logits [masks, vocab]``. How it is built and cached
is in :mod:`maskserve.backends.onnx_export`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from maskserve.backends import cache as _cache
from maskserve.backends import onnx_build as _build
from maskserve.backends import onnx_export as _export
from maskserve.backends import onnx_session as _session
from maskserve.backends.base import BackendOptions, EncodedBatch
from maskserve.backends.device import default_threads, resolve_device
from maskserve.domain import Float32Array

logger = logging.getLogger(__name__)

_MISSING_ORT = "--backend onnx needs onnxruntime: pip install 'maskserve[onnx]'"


def _import_ort() -> Any:
    try:
        import onnx  # noqa: F401  (the export and the quantizer need it too)
        import onnxruntime
    except ImportError as exc:
        raise ValueError(_MISSING_ORT) from exc
    return onnxruntime


class OnnxBackend:
    name = "onnx"
    device = "cpu"
    # On a CPU padding costs compute: a batch of mixed lengths runs as a few calls over similar lengths.
    splits_by_length = True

    def __init__(self, session: Any, meta: dict[str, Any], *, quantize: str | None = None) -> None:
        self._session = session
        self._inputs = {item.name for item in session.get_inputs()}
        self._head_at_masks = bool(meta.get("head_at_masks", False))
        self._last_layer_at_masks = bool(meta.get("last_layer_at_masks", False))
        self.vocab_size = int(meta["vocab_size"])
        self.dtype = "float32" if quantize is None else f"float32+{quantize}"
        self.optimized = bool(meta.get("optimized", False))

    @classmethod
    def load(cls, path: Path, options: BackendOptions | None = None, **changes: Any) -> OnnxBackend:
        options = dataclasses.replace(options or BackendOptions(), **changes)
        ort = _import_ort()
        quantize = options.quantize
        if quantize not in {None, "int8"}:
            raise ValueError(f"--backend onnx cannot quantize to {quantize!r}; only int8")
        if resolve_device(options.device) != "cpu":
            raise ValueError("--backend onnx runs on the CPU; use --backend torch for CUDA")
        path = Path(path)
        threads = options.threads or default_threads()
        started = time.perf_counter()
        entry = _build.ensure_fp32(
            path, options.cache_dir, threads=threads, trust_remote_code=options.trust_remote_code
        )
        if quantize == "int8":
            entry = _build.ensure_int8(path, options.cache_dir, entry, options.calibration)
        meta = _cache.read_entry(entry)
        if meta is None:  # pragma: no cover - the entry was just published
            raise ValueError(f"the ONNX cache entry {entry} vanished while loading it")
        session = _session.session(ort, entry / _export.MODEL_FILE, threads, spin=options.spin)
        logger.info(
            "ONNX Runtime %s serving %s (%s%s, %d threads) from %s, ready in %.1f s",
            ort.__version__,
            meta["architecture"],
            "float32" if quantize is None else f"float32+{quantize}",
            ", transformer fusions" if meta.get("optimized") else "",
            threads,
            entry,
            time.perf_counter() - started,
        )
        return cls(session, meta, quantize=quantize)

    @property
    def head_at_masks(self) -> bool:
        return self._head_at_masks

    @property
    def last_layer_at_masks(self) -> bool:
        return self._last_layer_at_masks

    def mask_logits(self, batch: EncodedBatch) -> Float32Array:
        logits = self._session.run([_session.OUTPUT], _session.graph_feed(batch, self._inputs))[0]
        return np.ascontiguousarray(logits, dtype=np.float32)
