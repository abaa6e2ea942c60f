"""A ModelInfo for protocol tests that need no model."""

from __future__ import annotations

from typing import Any

from maskserve.domain import ModelInfo


def model_info(**overrides: Any) -> ModelInfo:
    values: dict[str, Any] = {
        "name": "bert",
        "model_id": "org/bert",
        "revision": None,
        "architecture": "BertForMaskedLM",
        "model_type": "bert",
        "mask_token": "[MASK]",
        "vocab_size": 10,
        "max_length": 64,
        "backend": "torch",
        "dtype": "float32",
        "platform": "pytorch_transformers",
    }
    return ModelInfo(**{**values, **overrides})
