"""The graphs the ONNX-graph engines (ONNX Runtime, OpenVINO) run: exported once per model (head at the
masks), int8 once per recipe, each built in a child process and published atomically into the cache."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from maskserve.backends import cache as _cache
from maskserve.backends import onnx_export as _export
from maskserve.backends import onnx_quantize as _quantize
from maskserve.backends.child import run_build

logger = logging.getLogger(__name__)


def ensure_fp32(path: Path, cache_dir: Path | None, *, threads: int, trust_remote_code: bool) -> Path:
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


def ensure_int8(path: Path, cache_dir: Path | None, source: Path, calibration: Path | None) -> Path:
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
