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
from maskserve.backends import onnx_export as _export
from maskserve.backends import onnx_quantize as _quantize
from maskserve.backends import onnx_session as _session
from maskserve.backends.base import BackendOptions, EncodedBatch
from maskserve.backends.child import run_build
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
        entry = _ensure_fp32(
            path, options.cache_dir, threads=threads, trust_remote_code=options.trust_remote_code
        )
        if quantize == "int8":
            entry = _ensure_int8(path, options.cache_dir, entry, options.calibration)
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
        ids = np.ascontiguousarray(batch.input_ids, dtype=np.int64)
        types = batch.token_type_ids
        feed = {
            "input_ids": ids,
            "attention_mask": np.ascontiguousarray(batch.attention_mask, dtype=np.int64),
            "token_type_ids": np.zeros_like(ids) if types is None else np.ascontiguousarray(types, np.int64),
            "mask_rows": np.ascontiguousarray(batch.mask_rows, dtype=np.int64),
            "mask_cols": np.ascontiguousarray(batch.mask_cols, dtype=np.int64),
        }
        # The exporter drops inputs a model never reads (DeBERTa-v2 without token types, for one).
        logits = self._session.run([_session.OUTPUT], {k: v for k, v in feed.items() if k in self._inputs})[0]
        return np.ascontiguousarray(logits, dtype=np.float32)


def _ensure_fp32(path: Path, cache_dir: Path | None, *, threads: int, trust_remote_code: bool) -> Path:
    name = f"{_export.cache_key(path, None)}-fp32"
    found = _cache.find_entry(path, cache_dir, name)
    if found is not None:
        logger.info("reusing the cached ONNX export %s", found)
        return found
    entry = _cache.cache_root(path, cache_dir) / name
    started = time.perf_counter()
    # The server is live but not ready meanwhile: a first export of a bert-base takes about a minute here.
    logger.info(
        "exporting %s to ONNX (once; cached in %s); the server is ready once it is done", path, entry.parent
    )
    with _cache.building(entry) as scratch:
        run_build(_export.build_fp32_job, _export.Fp32Build(path, scratch, threads, trust_remote_code))
    logger.info("exported %s to ONNX in %.1f s", path, time.perf_counter() - started)
    return entry


def _ensure_int8(path: Path, cache_dir: Path | None, source: Path, calibration: Path | None) -> Path:
    reduce = _quantize.reduce_range()
    # Read at call time, so a benchmark can swap recipes; the recipe is part of the entry's key.
    recipe = _quantize.with_calibration(_quantize.DEFAULT_RECIPE, calibration)
    name = f"{_export.cache_key(path, 'int8', reduce_range=reduce, recipe=recipe.key())}-int8"
    found = _cache.find_entry(path, cache_dir, name)
    if found is not None:
        return found
    entry = _cache.cache_root(path, cache_dir) / name
    logger.info("quantizing %s to int8 (once; cached in %s)", path, entry.parent)
    with _cache.building(entry) as scratch:
        job = _quantize.Int8Build(source, scratch, reduce, recipe, model_dir=path, calibration=calibration)
        run_build(_quantize.build_int8_job, job)
    return entry
