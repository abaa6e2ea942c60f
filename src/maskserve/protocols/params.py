"""Task parameters as each protocol reads them, with :mod:`maskserve.params` declaring what they are: the
HF API refuses a key it does not know; V1 and V2 carry extension keys of their own, so there an unknown key
is accepted and reported back to the client as a warning."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from maskserve.domain import TASK_FILL_MASK, TASK_KSERVE_FILL_MASK, TASK_SCORE, TaskCall
from maskserve.errors import BadRequest, clip
from maskserve.params import FillMaskParams, ScoreParams, TaskParams
from maskserve.protocols.common import type_name

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=TaskParams)

# Keys V1/V2 clients send that are not task parameters (the binary extension's, KServe's) and that are
# therefore never reported as unknown.
TRANSPORT_KEYS = frozenset(
    {"binary_data_output", "binary_data", "binary_data_size", "content_type", "headers"}
)
# Unknown keys already logged, so a client that always sends one costs one line, not one per request.
_logged_unknown: set[str] = set()
_MAX_LOGGED = 256


def unknown_keys(raw: Mapping[str, Any], cls: type[TaskParams], also: tuple[str, ...] = ()) -> list[str]:
    """Keys of ``raw`` that are neither ``cls``'s parameters, ``also`` nor a transport's own."""
    known = set(cls.known()) | set(also)
    return [str(k) for k in raw if k not in known and k not in TRANSPORT_KEYS]


def unknown_warnings(
    raw: Any, where: str = "parameters", cls: type[TaskParams] = FillMaskParams
) -> list[str]:
    """One warning per key of ``raw`` that no parameter has, for V1 and V2, which accept them (KServe's
    extension keys) but must not let a misspelt ``topk`` pass unnoticed."""
    if not isinstance(raw, Mapping):
        return []
    return [
        f"parameter {clip(repr(key))} in '{where}' is not a {cls.task} parameter and was ignored; the known "
        f"ones are {', '.join(cls.known())}"
        for key in unknown_keys(raw, cls, also=(TASK_KEY,))
    ]


# V1 and V2 name the task among their parameters: {"task": "score", ...}; fill-mask when absent.
TASK_KEY = "task"
TASKS: dict[str, type[TaskParams]] = {cls.task: cls for cls in (FillMaskParams, ScoreParams)}
_ALIASES = {"fill_mask": "fill-mask"}  # KServe's spelling of the task


def task_of(raw: Any, where: str = "parameters") -> type[TaskParams]:
    """The parameters' class of the task ``raw`` names (``task``), fill-mask when it names none."""
    name = raw.get(TASK_KEY) if isinstance(raw, Mapping) else None
    if name is None:
        return FillMaskParams
    if not isinstance(name, str) or _ALIASES.get(name, name) not in TASKS:
        raise BadRequest(
            f"'{where}.{TASK_KEY}' must be one of {', '.join(map(repr, TASKS))}, got {clip(repr(name))}"
        )
    return TASKS[_ALIASES.get(name, name)]


def parse_params(raw: Any, where: str = "parameters", *, strict: bool = False) -> FillMaskParams | None:
    """The fill-mask parameters, or None when none of the known ones is given."""
    return parse_task_params(FillMaskParams, raw, where, strict=strict)


def parse_task_params(cls: type[P], raw: Any, where: str = "parameters", *, strict: bool = False) -> P | None:
    """``cls``'s parameters, or None when none of the known ones is given. ``strict`` (the HF API): an
    unknown key is a 400 that names it, since a misspelt ``topk`` would otherwise answer as if it were
    absent."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise BadRequest(f"'{where}' must be an object, got {type_name(raw)}")
    unknown = unknown_keys(raw, cls, also=() if strict else (TASK_KEY,))
    if unknown and strict:
        raise BadRequest(
            f"unknown parameter {clip(repr(unknown[0]))} in '{where}'; the known ones are "
            f"{', '.join(cls.known())}"
        )
    for key in unknown:
        if key not in _logged_unknown and len(_logged_unknown) < _MAX_LOGGED:
            _logged_unknown.add(key)
            logger.debug(
                "parameter %s in '%s' is not a %s parameter; ignoring it", clip(key), where, cls.task
            )
    if not any(raw.get(k) is not None for k in cls.known()):
        return None
    return cls.parse(raw, where)


def kserve_call(texts: list[str], raw: Any, *, candidates: bool = False) -> TaskCall:
    """What a V1 or V2 request asks: a score when its parameters say ``"task": "score"``; the pipeline's
    candidates when it passes fill-mask parameters (or ``candidates``: V2 top-k outputs); else KServe's own
    fill-mask answer. Unknown parameters are accepted, each with a warning."""
    cls = task_of(raw)
    params = parse_task_params(cls, raw)
    warnings = tuple(unknown_warnings(raw, cls=cls))
    if cls is ScoreParams:
        return TaskCall(TASK_SCORE, texts, params or ScoreParams(), warnings)
    if params is not None or candidates:
        return TaskCall(TASK_FILL_MASK, texts, params or FillMaskParams(), warnings)
    return TaskCall(TASK_KSERVE_FILL_MASK, texts, FillMaskParams(), warnings)
