"""Plain values shared by every layer: what a request asks for and what the model answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_TOP_K = 5

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]


class OutputMode(str, Enum):
    """What the KServe-shaped outputs (V1 ``predictions``, V2 ``output-0``) carry."""

    TOP1 = "top1"
    PROBABILITIES = "probabilities"
    LOGITS = "logits"


@dataclass(frozen=True)
class FillMaskParams:
    """Normalised request parameters; ``targets`` is None when the caller gave none."""

    top_k: int = DEFAULT_TOP_K
    targets: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Prediction:
    """One candidate for one mask, exactly the pipeline's dict."""

    score: float
    token: int
    token_str: str
    sequence: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "token": self.token,
            "token_str": self.token_str,
            "sequence": self.sequence,
        }


# One list of candidates per mask of one input.
InputPredictions = list[list[Prediction]]

# KServe's per-input value: the top-1 string, or token-id -> number for one mask / a list of them for several.
KServeValue = str | dict[str, float] | list[dict[str, float]]


@dataclass(frozen=True)
class EncodedText:
    """One tokenized input: its ids (no padding) and where its masks are."""

    input_ids: tuple[int, ...]
    mask_positions: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None = None

    @property
    def length(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class MaskLogits:
    """The model's answer for one input: logits over the vocabulary at each mask, shape [masks, vocab]."""

    encoded: EncodedText
    logits: Float32Array


@dataclass(frozen=True)
class ModelInfo:
    """What the server knows about the model it serves (for metadata routes and routing)."""

    name: str
    model_id: str
    revision: str | None
    architecture: str
    model_type: str
    mask_token: str
    vocab_size: int
    max_length: int
    backend: str
    dtype: str
    aliases: tuple[str, ...] = field(default=())

    def answers_to(self, name: str) -> bool:
        return name in (self.name, self.model_id) or name in self.aliases
