"""Plain values shared by every layer: what a request asks for and what the model answers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]


class OutputMode(str, Enum):
    """What the KServe-shaped outputs (V1 ``predictions``, V2 ``output-0``) carry."""

    TOP1 = "top1"
    PROBABILITIES = "probabilities"
    LOGITS = "logits"


# The tasks a request may ask for, by the names the protocols use for them.
TASK_FILL_MASK = "fill-mask"
# KServe's answer to a fill-mask request without parameters: top-1 text, or every token's probability/logit.
TASK_KSERVE_FILL_MASK = "kserve-fill-mask"
# The pseudo-log-likelihood of whole sentences (docs/scores.md).
TASK_SCORE = "score"


@dataclass(frozen=True)
class TaskCall:
    """What a request asks of a model, as a protocol reads it: the task, its texts and its parameters (the
    task's :class:`maskserve.params.TaskParams`)."""

    task: str
    texts: list[str]
    params: Any
    # What the client should hear about its request before any answer (a parameter that was ignored).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prediction:
    """One candidate for one mask: the pipeline's dict, plus ``tokens`` (every piece) for a word answer."""

    score: float
    token: int
    token_str: str
    sequence: str
    tokens: tuple[int, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": self.score,
            "token": self.token,
            "token_str": self.token_str,
            "sequence": self.sequence,
        }
        if self.tokens is not None:
            out["tokens"] = list(self.tokens)
        return out


@dataclass(frozen=True)
class JointPrediction:
    """One hypothesis of a joint decoding: a token for every mask of the input, scored together."""

    score: float
    tokens: tuple[int, ...]
    token_strs: tuple[str, ...]
    sequence: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "tokens": list(self.tokens),
            "token_strs": list(self.token_strs),
            "sequence": self.sequence,
        }


@dataclass(frozen=True)
class TokenScore:
    """One scored token: its id and text, its log-probability, its characters in the input."""

    token: int
    token_str: str
    logprob: float
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "token_str": self.token_str,
            "logprob": self.logprob,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True)
class WordScore:
    """One word (the tokens of one word id): its text, the sum of its tokens' log-probabilities."""

    word: str
    logprob: float
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {"word": self.word, "logprob": self.logprob, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class SentenceScore:
    """One input's pseudo-log-likelihood: the sum of its scored tokens' natural log-probabilities."""

    score: float
    num_tokens: int
    tokens: tuple[TokenScore, ...] | None = None
    words: tuple[WordScore, ...] | None = None

    @property
    def pseudo_perplexity(self) -> float:
        return math.exp(-self.score / self.num_tokens)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": self.score,
            "num_tokens": self.num_tokens,
            "pseudo_perplexity": self.pseudo_perplexity,
        }
        if self.tokens is not None:
            out["tokens"] = [t.as_dict() for t in self.tokens]
        if self.words is not None:
            out["words"] = [w.as_dict() for w in self.words]
        return out


Candidate = Prediction | JointPrediction

# One list of candidates per mask of one input (one list of hypotheses for a joint decoding).
InputPredictions = list[list[Candidate]]

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
    # The backend's name in V2 model metadata (Triton's platform names where there is one).
    platform: str = ""

    def answers_to(self, name: str) -> bool:
        return name in (self.name, self.model_id) or name in self.aliases
