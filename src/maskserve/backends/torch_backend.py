"""PyTorch backend: runs any ``*ForMaskedLM`` that transformers can load."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskserve.backends.base import EncodedBatch
from maskserve.domain import Float32Array

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    # KServe's rule: half precision on a GPU, full precision on a CPU, unless the user says otherwise.
    if dtype == "auto":
        return "float16" if device == "cuda" else "float32"
    return {"float": "float32", "half": "float16"}.get(dtype, dtype)


class TorchBackend:
    name = "torch"

    def __init__(self, model: Any, *, device: str, dtype: str) -> None:
        self._model = model
        self.device = device
        self.dtype = dtype
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self._accepts_token_types = "token_type_ids" in model.forward.__code__.co_varnames

    @classmethod
    def load(cls, path: Path, *, device: str, dtype: str, trust_remote_code: bool = False) -> TorchBackend:
        from transformers import AutoModelForMaskedLM

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        model = AutoModelForMaskedLM.from_pretrained(
            str(path), dtype=_DTYPES[dtype], trust_remote_code=trust_remote_code
        )
        model.eval()
        model.to(device)
        logger.info("loaded %s on %s as %s", type(model).__name__, device, dtype)
        return cls(model, device=device, dtype=dtype)

    @torch.inference_mode()
    def mask_logits(self, batch: EncodedBatch) -> Float32Array:
        inputs = {
            "input_ids": torch.from_numpy(batch.input_ids).to(self.device),
            "attention_mask": torch.from_numpy(batch.attention_mask).to(self.device),
        }
        if batch.token_type_ids is not None and self._accepts_token_types:
            inputs["token_type_ids"] = torch.from_numpy(batch.token_type_ids).to(self.device)
        logits = self._model(**inputs).logits
        rows = torch.from_numpy(batch.mask_rows).to(self.device)
        cols = torch.from_numpy(batch.mask_cols).to(self.device)
        picked = logits[rows, cols].float().cpu().numpy()
        return np.ascontiguousarray(picked, dtype=np.float32)
