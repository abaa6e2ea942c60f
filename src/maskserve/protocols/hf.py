"""The Hugging Face Inference API, fill-mask task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskserve.domain import InputPredictions, SentenceScore, TaskCall
from maskserve.errors import BadRequest, preview
from maskserve.params import FillMaskParams, TaskParams
from maskserve.protocols.common import load_json, require_texts, type_name
from maskserve.protocols.params import parse_task_params

# What the Inference API's body may hold.
BODY_KEYS = ("inputs", "parameters", "options")
_VERB = {"fill-mask": "fill", "score": "score"}


@dataclass(frozen=True)
class HFRequest:
    texts: list[str]
    # The pipeline returns a lone input's result unwrapped, for a string and for a one-element list alike;
    # a score answers a string with one object and a list with a list.
    unwrap: bool
    params: TaskParams
    use_cache: bool | None = None
    wait_for_model: bool | None = None

    @property
    def call(self) -> TaskCall:
        return TaskCall(self.params.task, self.texts, self.params)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def parse_hf_request(
    body: bytes, content_type: str | None, task: type[TaskParams] = FillMaskParams
) -> HFRequest:
    """JSON ``{"inputs", "parameters", "options"}``, or the raw text itself when the body is not JSON; the
    parameters are ``task``'s (fill-mask by default, or a score's)."""
    if not body.strip():
        # Not "no mask token": an empty body is a request without inputs, whatever its content type.
        raise BadRequest(
            """'inputs' is missing: the body is empty; send {"inputs": "a text with the mask token"}"""
        )
    if _is_json(content_type):
        payload = load_json(body)
    else:
        try:
            payload = load_json(body)
        except BadRequest:
            try:
                return HFRequest(texts=[body.decode("utf-8")], unwrap=True, params=task())
            except UnicodeDecodeError as exc:
                raise BadRequest("the request body is neither JSON nor UTF-8 text") from exc
    if isinstance(payload, str):
        return HFRequest(texts=[payload], unwrap=True, params=task())
    if not isinstance(payload, dict):
        raise BadRequest(f'the body must be a JSON object like {{"inputs": "..."}}, got {type_name(payload)}')
    unknown = [str(key) for key in payload if key not in BODY_KEYS]
    # A misspelt "parameter" would otherwise be answered as if no parameter had been given.
    unknown_note = (
        f"unknown key {preview(unknown[0])} in the body; the known ones are {', '.join(BODY_KEYS)}"
        if unknown
        else ""
    )
    if "inputs" not in payload:
        note = f" ({unknown_note})" if unknown else ""
        raise BadRequest(f"'inputs' is required: the text (or list of texts) to {_VERB[task.task]}{note}")
    if unknown:
        raise BadRequest(unknown_note)
    texts = require_texts(payload["inputs"], "inputs")
    params = parse_task_params(task, payload.get("parameters"), strict=True) or task()
    options = payload.get("options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(f"'options' must be an object, got {type_name(options)}")
    options = options or {}
    return HFRequest(
        texts=texts,
        unwrap=len(texts) == 1 if task is FillMaskParams else isinstance(payload["inputs"], str),
        params=params,
        use_cache=_opt_bool(options, "use_cache"),
        wait_for_model=_opt_bool(options, "wait_for_model"),
    )


def _opt_bool(options: dict[str, Any], key: str) -> bool | None:
    value = options.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise BadRequest(f"'options.{key}' must be true or false, got {preview(value)}")


def render_input(result: InputPredictions) -> list[Any]:
    """One input, nested as the pipeline nests it: a flat list for one mask, a list per mask otherwise."""
    rows = [[p.as_dict() for p in candidates] for candidates in result]
    return rows[0] if len(rows) == 1 else rows


def render_scores(results: list[SentenceScore], unwrap: bool) -> Any:
    """A score per input: one object for a string input, a list of them for a list."""
    rendered = [r.as_dict() for r in results]
    return rendered[0] if unwrap else rendered


def render_hf_response(results: list[InputPredictions], unwrap: bool) -> list[Any]:
    rendered = [render_input(r) for r in results]
    return rendered[0] if unwrap else rendered
