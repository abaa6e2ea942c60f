"""The one declaration of each task's request parameters: types, bounds, defaults, combination rules.

Every protocol parses its ``parameters`` with these classes (HF API, V1, V2 over REST and gRPC, batch jobs),
the OpenAPI document shows their JSON schema, and the playground reads its bounds from :func:`bounds`. The
error messages name the parameter as the client wrote it (``'parameters.top_k' must be at least 1, got 0``),
not pydantic's generic wording, because a person must be able to act on them.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema
from typing_extensions import Self

from maskserve.errors import BadRequest, preview

DEFAULT_TOP_K = 5
DEFAULT_MAX_SUBWORDS = 3
DEFAULT_NUM_BEAMS = 5
# The most any request may ask for; a server may allow less (--max_subwords, --max_beams).
MAX_SUBWORDS = 8
MAX_NUM_BEAMS = 32


def _count(raw: Any) -> int:
    # JSON has one number type; 3.0 is a fine count, 3.5 and true are not. JSON has no infinity or NaN, but
    # gRPC's double parameters do, and int() raises on them.
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or (isinstance(raw, float) and not math.isfinite(raw))
        or raw != int(raw)
    ):
        raise ValueError(f"must be a positive integer, got {preview(raw)}")
    return int(raw)


def _flag(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValueError(f"must be true or false, got {preview(raw)}")
    return raw


def _words(raw: Any) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(t, str) for t in items):
        raise ValueError("must be a string or a list of strings")
    if not items or not any(t.strip() for t in items):
        raise ValueError("is empty; give at least one target word")
    return tuple(items)


def _span(raw: Any) -> tuple[int, int]:
    items = raw
    if isinstance(raw, str):  # gRPC parameters are scalars: "start,end" (or "[start, end]")
        parts = [p.strip() for p in raw.strip().strip("[]").split(",")]
        items = [int(p) if p.lstrip("-").isdigit() else p for p in parts]
    if not isinstance(items, list | tuple) or len(items) != 2:
        raise ValueError(f"must be [start, end], two character offsets into the input, got {preview(raw)}")
    start, end = (_count(item) for item in items)
    if start < 0 or start >= end:
        raise ValueError(f"must be [start, end] with 0 <= start < end, got [{start}, {end}]")
    return start, end


Count = Annotated[int, BeforeValidator(_count)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Words = Annotated[
    tuple[str, ...],
    BeforeValidator(_words),
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    ),
]


class TaskParams(BaseModel):
    """Base of every task's parameters: frozen (they key the response cache), parsed by :meth:`parse`."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())
    # The task these parameters belong to (V1/V2 select it with the ``task`` parameter).
    task: ClassVar[str]

    @classmethod
    def known(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str = "parameters") -> Self:
        """From the known keys of ``raw`` (null values count as absent); a BadRequest naming the parameter
        when one is wrong. Unknown keys are the caller's to judge (the HF API refuses them, V1/V2 do not)."""
        given = {k: v for k, v in raw.items() if k in cls.model_fields and v is not None}
        try:
            params = cls.model_validate(given)
        except ValidationError as exc:
            raise BadRequest(_message(cls, exc, where)) from None
        params.check(where)
        return params

    def check(self, where: str) -> None:
        """Rules between parameters (a BadRequest naming them); the bounds of each are in its field."""


def _message(cls: type[TaskParams], exc: ValidationError, where: str) -> str:
    error = exc.errors(include_url=False)[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "value_error":
        text = str(ctx.get("error", error["msg"]))
    elif kind == "greater_than_equal":
        text = f"must be at least {ctx['ge']}, got {preview(error['input'])}"
    elif kind == "less_than_equal":
        text = f"must be at most {ctx['le']}, got {preview(error['input'])}"
    elif kind == "literal_error":
        text = f"must be one of {', '.join(map(repr, choices(cls, name)))}, got {preview(error['input'])}"
    else:  # pragma: no cover - every field's own validator speaks first
        text = str(error["msg"])
    return f"'{where}.{name}' {text}"


def choices(cls: type[BaseModel], name: str) -> tuple[str, ...]:
    """The values a Literal field allows."""
    annotation = cls.model_fields[name].annotation
    return tuple(str(a) for a in typing.get_args(annotation)) if annotation is not None else ()


def bounds(cls: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Each field's default, bounds and choices, for a form (the playground) that must not copy them."""
    out: dict[str, dict[str, Any]] = {}
    for name, field in cls.model_fields.items():
        entry: dict[str, Any] = {"default": field.default}
        for item in field.metadata:
            if isinstance(item, Ge):
                entry["min"] = item.ge
            elif isinstance(item, Le):
                entry["max"] = item.le
        if typing.get_origin(field.annotation) is Literal:
            entry["choices"] = list(choices(cls, name))
        out[name] = entry
    return out


Span = Annotated[
    tuple[int, int],
    BeforeValidator(_span),
    WithJsonSchema(
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}
    ),
]

TargetScoring = Literal["first_token", "word"]
Decoding = Literal["independent", "joint"]


class FillMaskParams(TaskParams):
    """The pipeline's ``top_k`` and ``targets``, and the word options of docs/words.md (opt-in). ``targets``
    is None when the caller gave none."""

    task: ClassVar[str] = "fill-mask"

    top_k: Count = Field(DEFAULT_TOP_K, ge=1, description="candidates per mask")
    targets: Words | None = Field(None, description="restrict candidates to these words")
    target_scoring: TargetScoring = Field(
        "first_token",
        description="word: score each target as the whole word it is, over all its pieces (docs/words.md)",
    )
    whole_word: Flag = Field(False, description="fill the mask with a whole word of 1..max_subwords pieces")
    max_subwords: Count = Field(
        DEFAULT_MAX_SUBWORDS, ge=1, le=MAX_SUBWORDS, description="longest whole word, in pieces"
    )
    decoding: Decoding = Field(
        "independent", description="joint: decode several masks together by beam search"
    )
    num_beams: Annotated[int | None, BeforeValidator(_count)] = Field(
        None, ge=1, le=MAX_NUM_BEAMS, description="beam width (default max(top_k, 5))"
    )

    @property
    def words(self) -> bool:
        """Whether the request asks for one of the word algorithms instead of the pipeline's."""
        return self.target_scoring == "word" or self.whole_word or self.decoding == "joint"

    @property
    def beams(self) -> int:
        return self.num_beams if self.num_beams is not None else max(self.top_k, DEFAULT_NUM_BEAMS)

    def check(self, where: str) -> None:
        """Options that only mean something together, or that exclude each other, named in the answer."""
        given = self.model_fields_set
        if self.target_scoring == "word" and self.targets is None:
            raise BadRequest(f"'{where}.target_scoring' 'word' scores targets: give 'targets' too")
        if self.whole_word and self.targets is not None:
            raise BadRequest(
                f"'{where}.whole_word' fills the mask with any word; to score given words use 'targets' with "
                "'target_scoring': 'word' instead"
            )
        if "max_subwords" in given and not self.whole_word:
            raise BadRequest(f"'{where}.max_subwords' applies to 'whole_word': true only")
        if self.decoding == "joint":
            if self.targets is not None:
                raise BadRequest(
                    f"'{where}.decoding' 'joint' fills every mask from the whole vocabulary; it takes no "
                    "targets"
                )
            if self.whole_word:
                raise BadRequest(
                    f"'{where}.decoding' 'joint' and 'whole_word' cannot be combined (whole_word takes one "
                    "mask)"
                )
        if "num_beams" in given and not (self.decoding == "joint" or self.whole_word):
            raise BadRequest(f"'{where}.num_beams' applies to 'decoding': 'joint' and 'whole_word' only")
        if self.decoding == "joint" and self.top_k > self.beams:
            raise BadRequest(
                f"'{where}.top_k' ({self.top_k}) is more than 'num_beams' ({self.beams}): a joint decoding "
                "keeps num_beams hypotheses; raise num_beams or lower top_k"
            )


ScoreMetric = Literal["word_l2r", "token"]


class ScoreParams(TaskParams):
    """Sentence scores (docs/scores.md): the pseudo-log-likelihood of each input, and on request its tokens'
    and words' log-probabilities."""

    task: ClassVar[str] = "score"

    metric: ScoreMetric = Field(
        "word_l2r",
        description="word_l2r: a token is masked with the rest of its word to its right (minicons' "
        "within_word_l2r); token: the token alone (minicons' original)",
    )
    tokens: Flag = Field(False, description="also each scored token's log-probability and character offsets")
    words: Flag = Field(False, description="also each word's log-probability (the sum of its tokens')")
    span: Span | None = Field(
        None,
        description="[start, end] character offsets: only the tokens inside are scored, the rest is context",
    )
