"""Fill-mask parameters, read the same way from every protocol: the pipeline's ``top_k`` and ``targets``,
and the word options of docs/words.md, each checked for its type, range and combination."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from maskserve.domain import DEFAULT_MAX_SUBWORDS, DEFAULT_TOP_K, FillMaskParams
from maskserve.errors import BadRequest
from maskserve.protocols.common import clip, preview, type_name

logger = logging.getLogger(__name__)

MAX_SUBWORDS = 8
MAX_NUM_BEAMS = 32
KNOWN = ("top_k", "targets", "target_scoring", "whole_word", "max_subwords", "decoding", "num_beams")
_CHOICES = {"target_scoring": ("first_token", "word"), "decoding": ("independent", "joint")}
# Keys V1/V2 clients send that are not fill-mask parameters (the binary extension's, KServe's) and that
# are therefore not worth a debug line.
_TRANSPORT_KEYS = frozenset(
    {"binary_data_output", "binary_data", "binary_data_size", "content_type", "headers"}
)
# Unknown keys already logged, so a client that always sends one costs one line, not one per request.
_logged_unknown: set[str] = set()
_MAX_LOGGED = 256


def _int(raw: Any, name: str, where: str, low: int, high: int | None = None) -> int:
    # JSON has one number type; 3.0 is a fine count, 3.5 and true are not. JSON has no infinity or NaN, but
    # gRPC's double parameters do, and int() raises on them.
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or (isinstance(raw, float) and not math.isfinite(raw))
        or raw != int(raw)
    ):
        raise BadRequest(f"'{where}.{name}' must be a positive integer, got {preview(raw)}")
    value = int(raw)
    if value < low:
        raise BadRequest(f"'{where}.{name}' must be at least {low}, got {value}")
    if high is not None and value > high:
        raise BadRequest(f"'{where}.{name}' must be at most {high}, got {value}")
    return value


def _choice(raw: Any, name: str, where: str) -> str:
    choices = _CHOICES[name]
    if not isinstance(raw, str) or raw not in choices:
        raise BadRequest(
            f"'{where}.{name}' must be one of {', '.join(map(repr, choices))}, got {preview(raw)}"
        )
    return raw


def _bool(raw: Any, name: str, where: str) -> bool:
    if not isinstance(raw, bool):
        raise BadRequest(f"'{where}.{name}' must be true or false, got {preview(raw)}")
    return raw


def _unknown(raw: Mapping[str, Any], where: str, strict: bool) -> None:
    unknown = [str(k) for k in raw if k not in KNOWN and k not in _TRANSPORT_KEYS]
    if not unknown:
        return
    if strict:
        raise BadRequest(
            f"unknown parameter {clip(repr(unknown[0]))} in '{where}'; the known ones are {', '.join(KNOWN)}"
        )
    for key in unknown:
        if key not in _logged_unknown and len(_logged_unknown) < _MAX_LOGGED:
            _logged_unknown.add(key)
            logger.debug("parameter %s in '%s' is not a fill-mask parameter; ignoring it", clip(key), where)


def parse_params(raw: Any, where: str = "parameters", *, strict: bool = False) -> FillMaskParams | None:
    """The parameters, or None when none of the known ones is given. ``strict`` (the HF API): an unknown
    key is a 400 that names it, since a misspelt ``topk`` would otherwise answer as if it were absent; V1
    and V2 carry extension keys of their own, so there they are ignored (and logged once at debug)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise BadRequest(f"'{where}' must be an object, got {type_name(raw)}")
    _unknown(raw, where, strict)
    given = {k: raw[k] for k in KNOWN if raw.get(k) is not None}
    if not given:
        return None
    top_k = _int(given["top_k"], "top_k", where, 1) if "top_k" in given else DEFAULT_TOP_K
    targets: tuple[str, ...] | None = None
    if "targets" in given:
        items = [given["targets"]] if isinstance(given["targets"], str) else given["targets"]
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            raise BadRequest(f"'{where}.targets' must be a string or a list of strings")
        if not items or not any(t.strip() for t in items):
            raise BadRequest(f"'{where}.targets' is empty; give at least one target word")
        targets = tuple(items)
    params = FillMaskParams(
        top_k=top_k,
        targets=targets,
        target_scoring=_choice(given["target_scoring"], "target_scoring", where)  # type: ignore[arg-type]
        if "target_scoring" in given
        else "first_token",
        whole_word=_bool(given["whole_word"], "whole_word", where) if "whole_word" in given else False,
        max_subwords=_int(given["max_subwords"], "max_subwords", where, 1, MAX_SUBWORDS)
        if "max_subwords" in given
        else DEFAULT_MAX_SUBWORDS,
        decoding=_choice(given["decoding"], "decoding", where)  # type: ignore[arg-type]
        if "decoding" in given
        else "independent",
        num_beams=_int(given["num_beams"], "num_beams", where, 1, MAX_NUM_BEAMS)
        if "num_beams" in given
        else None,
    )
    _check_combination(params, given, where)
    return params


def _check_combination(params: FillMaskParams, given: Mapping[str, Any], where: str) -> None:
    """Options that only mean something together, or that exclude each other, named in the answer."""
    if params.target_scoring == "word" and params.targets is None:
        raise BadRequest(f"'{where}.target_scoring' 'word' scores targets: give 'targets' too")
    if params.whole_word and params.targets is not None:
        raise BadRequest(
            f"'{where}.whole_word' fills the mask with any word; to score given words use 'targets' with "
            "'target_scoring': 'word' instead"
        )
    if "max_subwords" in given and not params.whole_word:
        raise BadRequest(f"'{where}.max_subwords' applies to 'whole_word': true only")
    if params.decoding == "joint":
        if params.targets is not None:
            raise BadRequest(
                f"'{where}.decoding' 'joint' fills every mask from the whole vocabulary; it takes no targets"
            )
        if params.whole_word:
            raise BadRequest(
                f"'{where}.decoding' 'joint' and 'whole_word' cannot be combined (whole_word takes one mask)"
            )
    if "num_beams" in given and not (params.decoding == "joint" or params.whole_word):
        raise BadRequest(f"'{where}.num_beams' applies to 'decoding': 'joint' and 'whole_word' only")
    if params.decoding == "joint" and params.top_k > params.beams:
        raise BadRequest(
            f"'{where}.top_k' ({params.top_k}) is more than 'num_beams' ({params.beams}): a joint decoding "
            "keeps num_beams hypotheses; raise num_beams or lower top_k"
        )
