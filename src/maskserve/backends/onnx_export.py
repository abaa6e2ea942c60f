"""Build the ONNX graphs the ONNX Runtime backend runs, and keep them in an on-disk cache.

One cache entry is a directory ``<key>-fp32`` or ``<key>-int8`` holding ``model.onnx`` (plus
``model.onnx.data`` for graphs past protobuf's 2 GB) and ``meta.json``. An entry is built in a temporary
directory beside it and published with one ``os.replace``, so a crash never leaves a half-written model
where a later load would find it, and two processes racing to build the same entry both end up using one.

The fp32 entry holds the graph ONNX Runtime's transformer optimizer produced when that graph loads and
matches the plain export on a probe batch, otherwise the plain export; the int8 entry is derived from it.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskserve.backends import cache as _cache
from maskserve.backends.cache import write_meta
from maskserve.backends.onnx_session import OUTPUT, close, probe_feed, quiet_ort_logs, run, session
from maskserve.domain import Float32Array

logger = logging.getLogger(__name__)

# Bump whenever the graphs this module writes change (inputs, export settings, optimizer or quantizer
# options): the version is part of every cache key, so old entries are then simply not found.
EXPORT_VERSION = 4
OPSET = 17
MODEL_FILE = "model.onnx"

# Encoders whose exported graph ONNX Runtime's "bert" fusions understand. Anything else still gets the
# session-level ORT_ENABLE_ALL optimizations, just not the python fusions (Attention, SkipLayerNorm, ...).
_BERT_LIKE = {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra"}
_BIG_GRAPH_BYTES = 1_800_000_000  # past this, graphs are saved with external data (protobuf caps at 2 GB)
# The batch every graph is checked on (against torch, and the optimized graph against the plain one); the
# export traces a batch of another shape, so a graph that only works at its trace shape fails the check.
PROBE_SHAPE = {"batch": 3, "length": 13}


PACKAGES = ("maskserve", "torch", "transformers", "onnxruntime", "onnx")


def cache_key(
    path: Path, quantize: str | None, *, reduce_range: bool = False, recipe: str | None = None
) -> str:
    """Hash of everything the cached graph depends on: model files, library versions, settings."""
    build = {
        "export_version": EXPORT_VERSION,
        "opset": OPSET,
        "quantize": quantize,
        "reduce_range": reduce_range if quantize else None,
        "recipe": recipe if quantize else None,
    }
    return _cache.cache_key(path, PACKAGES, build)


# --- export ---


def accepts_token_types(model: Any) -> bool:
    # inspect.signature follows __wrapped__: transformers 5 decorates forward(*args, **kwargs).
    return "token_type_ids" in inspect.signature(model.forward).parameters


def head_scope(model: Any) -> str | None:
    """The ONNX node-name scope of the LM head (``/model/cls/``), from the module the head hook uses."""
    from maskserve.backends.heads import find_head

    head = find_head(model)
    for name, module in model.named_modules():
        if module is head and name:
            return "/model/" + str(name).replace(".", "/") + "/"
    return None


def export_onnx(
    model_dir: Path, out: Path, *, trust_remote_code: bool = False
) -> tuple[dict[str, Any], Float32Array]:
    """Export ``(ids, attention, [token types], rows, cols) -> [masks, vocab]`` logits to ``out``.

    Returns the metadata and torch's logits on the probe batch; ValueError if the model does not export.
    """
    import torch
    from transformers import AutoModelForMaskedLM

    from maskserve.backends.heads import MaskLogitsModule

    # Eager attention exports as plain MatMul/Softmax, the pattern ORT's Attention fusion recognises.
    model = AutoModelForMaskedLM.from_pretrained(
        str(model_dir), dtype=torch.float32, trust_remote_code=trust_remote_code, attn_implementation="eager"
    )
    model.eval()
    architecture = type(model).__name__
    token_types = accepts_token_types(model)
    # eval() on the wrapper too: the exporter restores the wrapper's train/eval mode afterwards, recursively.
    wrapper = MaskLogitsModule(model, token_types=token_types).eval()
    vocab_size = int(model.config.vocab_size)
    names = ["input_ids", "attention_mask", *(["token_type_ids"] if token_types else []), "mask_rows"]
    names.append("mask_cols")

    def tensors(feed: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(feed[name]) for name in names)

    probe = probe_feed(vocab_size, token_types, **PROBE_SHAPE)
    probe_inputs = {k: torch.from_numpy(v) for k, v in probe.items() if k in names[:-2]}
    wrapper.head.verify(
        probe_inputs, torch.from_numpy(probe["mask_rows"]), torch.from_numpy(probe["mask_cols"])
    )
    # The trace dummy has padding (so no "no padding" shortcut is baked in) and another shape than the probe.
    dummy = probe_feed(vocab_size, token_types, batch=2, length=8)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names[:-2]}
    dynamic |= {"mask_rows": {0: "masks"}, "mask_cols": {0: "masks"}, OUTPUT: {0: "masks"}}
    started = time.perf_counter()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and legacy-exporter warnings, all benign here
            torch.onnx.export(
                wrapper,
                tensors(dummy),
                str(out),
                input_names=names,
                output_names=[OUTPUT],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        with torch.inference_mode():
            want = wrapper(*tensors(probe)).float().numpy()
    except Exception as exc:
        raise ValueError(f"cannot export {architecture} to ONNX: {type(exc).__name__}: {exc}") from exc
    logger.info("exported %s to ONNX in %.1f s", architecture, time.perf_counter() - started)
    return {
        "architecture": architecture,
        "model_type": str(getattr(model.config, "model_type", "")),
        "vocab_size": vocab_size,
        "token_types": token_types,
        "head_at_masks": bool(wrapper.head.enabled),
        "last_layer_at_masks": bool(wrapper.head.enabled and wrapper.head.last_layer),
        "head_scope": head_scope(model),
        "num_heads": int(getattr(model.config, "num_attention_heads", getattr(model.config, "n_heads", 0))),
        "hidden_size": int(getattr(model.config, "hidden_size", getattr(model.config, "dim", 0))),
    }, want


@dataclass(frozen=True)
class Fp32Build:
    """One fp32 export, as a job for :func:`maskserve.backends.child.run_build`."""

    model_dir: Path
    scratch: Path
    threads: int
    trust_remote_code: bool = False


def build_fp32_job(job: Fp32Build) -> None:
    import onnxruntime

    build_fp32(
        onnxruntime, job.model_dir, job.scratch, threads=job.threads, trust_remote_code=job.trust_remote_code
    )


def build_fp32(ort: Any, model_dir: Path, scratch: Path, *, threads: int, trust_remote_code: bool) -> None:
    """Export into ``scratch``, check the graph against torch, optimize it when that is safe, write meta."""
    raw = scratch / "export" / MODEL_FILE
    fused = scratch / "optimized" / MODEL_FILE
    raw.parent.mkdir()
    fused.parent.mkdir()
    meta, want = export_onnx(model_dir, raw, trust_remote_code=trust_remote_code)
    probe = probe_feed(meta["vocab_size"], meta["token_types"], **PROBE_SHAPE)
    try:
        got = run(session(ort, raw, threads), probe)
    except Exception as exc:
        raise ValueError(f"ONNX Runtime cannot run the export of {meta['architecture']}: {exc}") from exc
    ok, diff = close(got, want, 1e-3)
    if not ok:
        # The trace baked a shape or a branch into the graph: it only works at the shape it was traced at.
        raise ValueError(
            f"the ONNX export of {meta['architecture']} disagrees with torch on a batch of another shape "
            f"(max |diff| {diff:.3g}); use --backend torch"
        )
    meta["optimized"] = _optimize(ort, raw, fused, meta, probe, got, threads)
    chosen = fused if meta["optimized"] else raw
    for item in chosen.parent.iterdir():
        os.replace(item, scratch / item.name)
    shutil.rmtree(raw.parent)
    shutil.rmtree(fused.parent)
    write_meta(scratch, meta)


def _big(model: Path) -> bool:
    return sum(p.stat().st_size for p in model.parent.iterdir() if p.is_file()) > _BIG_GRAPH_BYTES


def _optimize(
    ort: Any,
    raw: Path,
    out: Path,
    meta: dict[str, Any],
    probe: dict[str, np.ndarray],
    reference: Float32Array,
    threads: int,
) -> bool:
    """ORT's transformer fusions (Attention, EmbedLayerNormalization, Gelu), less the slow ones.

    Kept only when the fused graph loads and matches the plain one on the probe batch.
    """
    if meta["model_type"] not in _BERT_LIKE or meta["num_heads"] <= 0 or meta["hidden_size"] <= 0:
        logger.info("no transformer fusions for model type %r; using the plain export", meta["model_type"])
        return False
    started = time.perf_counter()
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        fusions = FusionOptions("bert")
        fusions.enable_skip_layer_norm = fusions.enable_bias_skip_layer_norm = False
        fusions.enable_bias_gelu = False

        # opt_level 1: ORT's basic, provider-independent rewrites before the python fusions; level 2+ would
        # bake CPU-only kernels into the file, which the session's own ORT_ENABLE_ALL pass adds anyway.
        with quiet_ort_logs():
            optimized = optimize_model(
                str(raw),
                model_type="bert",
                num_heads=meta["num_heads"],
                hidden_size=meta["hidden_size"],
                optimization_options=fusions,
                opt_level=1,
                use_gpu=False,
            )
            optimized.save_model_to_file(str(out), use_external_data_format=_big(raw))
            fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        got = run(session(ort, out, threads), probe)
    except Exception as exc:
        logger.warning("ONNX Runtime's transformer optimizer failed (%s); using the plain export", exc)
        return False
    ok, diff = close(got, reference, 1e-4)
    if not ok:
        logger.warning(
            "the optimized graph differs from the export (max |diff| %.3g); using the export", diff
        )
        return False
    logger.info("optimized the ONNX graph in %.1f s: %s", time.perf_counter() - started, fused)
    return True
