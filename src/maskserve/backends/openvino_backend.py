"""OpenVINO Runtime backend: the graph the ONNX backend exports (head at the masks, cached once per model),
compiled by OpenVINO for this CPU.

OpenVINO reads the exported file as it is (its ONNX front end decomposes ONNX Runtime's fused transformer
operators), so both engines share one export, one cache key and one build; only the runtime differs. Each
thread that runs batches (the model workers) has its own infer request, and the compiled model gets one
stream per worker, so concurrent batches run side by side as they do in ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from maskserve.backends import cache as _cache
from maskserve.backends import onnx_build as _build
from maskserve.backends import onnx_export as _export
from maskserve.backends.base import BackendOptions, EncodedBatch
from maskserve.backends.device import default_threads, resolve_device
from maskserve.backends.onnx_session import OUTPUT, graph_feed
from maskserve.domain import Float32Array

logger = logging.getLogger(__name__)

_MISSING = (
    "--backend openvino needs openvino (and onnx, onnxruntime to export): pip install 'maskserve[openvino]'"
)


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ValueError(_MISSING) from exc
    return openvino


def compile_config(threads: int, streams: int) -> dict[str, Any]:
    """The compile properties: float32 inference (OpenVINO would pick bf16 on an AMX or AVX-512-BF16 CPU,
    which changes the answers), ``threads`` in all over ``streams`` streams, one per model worker. LATENCY
    with one stream: a batch uses every thread; THROUGHPUT with several: each worker's batch has its own."""
    return {
        "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
        "NUM_STREAMS": str(streams),
        "INFERENCE_NUM_THREADS": str(max(threads, streams)),
        "INFERENCE_PRECISION_HINT": "f32",
    }


class OpenVinoBackend:
    name = "openvino"
    device = "cpu"
    # On a CPU padding costs compute: a batch of mixed lengths runs as a few calls over similar lengths.
    splits_by_length = True

    def __init__(self, compiled: Any, meta: dict[str, Any]) -> None:
        self._compiled = compiled
        self._inputs = {name for port in compiled.inputs for name in port.get_names()}
        self._output = compiled.output(OUTPUT)
        self._local = threading.local()
        self._head_at_masks = bool(meta.get("head_at_masks", False))
        self._last_layer_at_masks = bool(meta.get("last_layer_at_masks", False))
        self.vocab_size = int(meta["vocab_size"])
        self.dtype = "float32"
        self.optimized = bool(meta.get("optimized", False))

    @classmethod
    def load(cls, path: Path, options: BackendOptions | None = None, **changes: Any) -> OpenVinoBackend:
        options = dataclasses.replace(options or BackendOptions(), **changes)
        ov = _import_openvino()
        if options.quantize is not None:
            # Measured: no OpenVINO int8 recipe both keeps the answers and runs faster than float on this
            # project's machines (docs/benchmarks.md, "OpenVINO int8"); ONNX Runtime's int8 does both.
            raise ValueError(
                f"--backend openvino does not quantize ({options.quantize!r}); "
                "use --backend onnx --quantize int8 (docs/benchmarks.md)"
            )
        if resolve_device(options.device) != "cpu":
            raise ValueError("--backend openvino runs on the CPU; use --backend torch for CUDA")
        path = Path(path)
        threads = options.threads or default_threads()
        streams = max(1, options.workers)
        started = time.perf_counter()
        entry = _build.ensure_fp32(
            path, options.cache_dir, threads=threads, trust_remote_code=options.trust_remote_code
        )
        meta = _cache.read_entry(entry)
        if meta is None:  # pragma: no cover - the entry was just published
            raise ValueError(f"the ONNX cache entry {entry} vanished while loading it")
        core = ov.Core()
        model = core.read_model(str(entry / _export.MODEL_FILE))
        compiled = core.compile_model(model, "CPU", compile_config(threads * streams, streams))
        logger.info(
            "OpenVINO %s serving %s (float32, %d threads, %d streams) from %s, ready in %.1f s",
            ov.__version__,
            meta["architecture"],
            threads * streams,
            streams,
            entry,
            time.perf_counter() - started,
        )
        return cls(compiled, meta)

    @property
    def head_at_masks(self) -> bool:
        return self._head_at_masks

    @property
    def last_layer_at_masks(self) -> bool:
        return self._last_layer_at_masks

    def _request(self) -> Any:
        # An infer request is not safe to share between threads; each model worker keeps its own.
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        return request

    def mask_logits(self, batch: EncodedBatch) -> Float32Array:
        request = self._request()
        request.infer(graph_feed(batch, self._inputs))
        # The request reuses its output buffer on the next call: copy out.
        return np.array(request.get_tensor(self._output).data, dtype=np.float32, copy=True)
