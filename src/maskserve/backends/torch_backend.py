"""PyTorch backend: runs any ``*ForMaskedLM`` that transformers can load, the head at the masks only."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maskserve.backends import int8
from maskserve.backends.base import BackendOptions, EncodedBatch
from maskserve.backends.device import default_threads, resolve_device
from maskserve.backends.heads import MaskedHead, find_head
from maskserve.backends.last_layer import find_last_layer
from maskserve.domain import Float32Array

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(dtype: str, device: str) -> str:
    # KServe's rule: half precision on a GPU, full precision on a CPU, unless the user says otherwise.
    if dtype == "auto":
        return "float16" if device == "cuda" else "float32"
    return {"float": "float32", "half": "float16"}.get(dtype, dtype)


# The products int8 leaves in float: the attention output and the feed-forward output, which read an internal
# activation (attention context, GELU output) with outliers that per-tensor dynamic activation scales crush;
# on minilm-l6-mlm-demo keeping them in float lifts top-1 agreement with fp32 from 0.71 to 0.77
# (docs/benchmarks.md).
KEEP_FLOAT = re.compile("|".join(int8.module_patterns(int8.ATTENTION_OUTPUT + int8.FFN_OUT)))


def int8_targets(model: nn.Module) -> set[str]:
    """The encoder Linear layers that dynamic int8 quantizes: not the LM head, not the layers above, and
    not the parts of the last layer that run at the masks only."""
    head = find_head(model)
    skip = {id(m) for m in head.modules()} if head is not None else set()
    last = find_last_layer(model) if head is not None else None
    if last is not None:
        # They run on a few rows, where float costs little, and the activation scale dynamic int8 takes
        # from those rows alone would make them differ from the whole layer (which the load check refuses).
        skip |= {id(m) for part in last.mask_rows_only for m in part.modules()}
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    if isinstance(output, nn.Module):
        # The vocabulary projection is tied to the word embeddings and turns small errors into rank changes
        # among tens of thousands of tokens; it runs at the masks only, so float costs little there.
        skip.add(id(output))
    return {
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and id(m) not in skip and not KEEP_FLOAT.search(name)
    }


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 with per-channel weight scales for :func:`int8_targets`; everything else stays float."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = dict.fromkeys(int8_targets(model), per_channel_dynamic_qconfig)
    quantized: nn.Module = quantize_dynamic(model, spec, dtype=torch.qint8)  # type: ignore[no-untyped-call]
    return quantized


class TorchBackend:
    name = "torch"

    def __init__(self, model: Any, *, device: str, dtype: str, quantize: str | None = None) -> None:
        self._model = model
        self.device = device
        # On a CPU padding costs compute; on a GPU it is nearly free.
        self.splits_by_length = device == "cpu"
        self.dtype = dtype if quantize is None else f"{dtype}+{quantize}"
        self.vocab_size = int(model.config.vocab_size)
        # transformers 5 wraps forward in decorators, so read the signature, not __code__.
        self._accepts_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
        self._head = MaskedHead(model)
        self._check_head()

    @classmethod
    def load(cls, path: Path, options: BackendOptions | None = None, **changes: Any) -> TorchBackend:
        from transformers import AutoModelForMaskedLM

        options = dataclasses.replace(options or BackendOptions(), **changes)
        quantize, trust_remote_code = options.quantize, options.trust_remote_code
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        if device == "cpu":
            torch.set_num_threads(options.threads or default_threads())
        if quantize is not None and (device != "cpu" or dtype != "float32"):
            raise ValueError("--quantize int8 runs on the CPU in float32; drop --device cuda / --dtype")
        model = AutoModelForMaskedLM.from_pretrained(
            str(path), dtype=_DTYPES[dtype], trust_remote_code=trust_remote_code
        )
        model.eval()
        if quantize == "int8":
            model = quantize_int8(model)
        model.to(device)
        logger.info(
            "loaded %s on %s as %s%s (%d threads)",
            type(model).__name__,
            device,
            dtype,
            f" with {quantize}" if quantize else "",
            torch.get_num_threads(),
        )
        return cls(model, device=device, dtype=dtype, quantize=quantize)

    def _inputs(self, batch: EncodedBatch) -> dict[str, torch.Tensor]:
        inputs = {
            "input_ids": torch.from_numpy(batch.input_ids).to(self.device),
            "attention_mask": torch.from_numpy(batch.attention_mask).to(self.device),
        }
        if batch.token_type_ids is not None and self._accepts_token_types:
            inputs["token_type_ids"] = torch.from_numpy(batch.token_type_ids).to(self.device)
        return inputs

    def _check_head(self) -> None:
        vocab = self.vocab_size
        ids = np.array([[min(5, vocab - 1)] * 6, [min(7, vocab - 1)] * 4 + [0, 0]], dtype=np.int64)
        attention = np.array([[1] * 6, [1] * 4 + [0, 0]], dtype=np.int64)
        probe = EncodedBatch(ids, attention, np.zeros_like(ids), np.array([0, 1, 1]), np.array([2, 0, 3]))
        rows = torch.from_numpy(probe.mask_rows).to(self.device)
        cols = torch.from_numpy(probe.mask_cols).to(self.device)
        self._head.verify(self._inputs(probe), rows, cols)

    @property
    def head_at_masks(self) -> bool:
        return self._head.enabled

    @property
    def last_layer_at_masks(self) -> bool:
        return self._head.enabled and self._head.last_layer

    @torch.inference_mode()
    def mask_logits(self, batch: EncodedBatch) -> Float32Array:
        rows = torch.from_numpy(batch.mask_rows).to(self.device)
        cols = torch.from_numpy(batch.mask_cols).to(self.device)
        picked = self._head.logits(self._inputs(batch), rows, cols).float().cpu().numpy()
        return np.ascontiguousarray(picked, dtype=np.float32)
