"""KServe's V1 protocol: ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskserve.domain import TASK_KSERVE_FILL_MASK, TASK_SCORE, InputPredictions, KServeValue, TaskCall
from maskserve.errors import BadRequest
from maskserve.protocols.common import load_json, require_texts, type_name
from maskserve.protocols.hf import render_input
from maskserve.protocols.params import kserve_call


@dataclass(frozen=True)
class V1Request:
    texts: list[str]
    # What is asked: KServe's answer, the pipeline's candidates (top_k, targets given) or a score.
    call: TaskCall


def parse_v1_request(body: bytes) -> V1Request:
    payload = load_json(body)
    if not isinstance(payload, dict):
        raise BadRequest(
            f'the body must be a JSON object like {{"instances": [...]}}, got {type_name(payload)}'
        )
    # KServe reads "inputs" first and falls back to "instances".
    key = "inputs" if "inputs" in payload else "instances"
    if key not in payload:
        raise BadRequest("'instances' is required: a list of texts, each with a mask token")
    value = payload[key]
    if not isinstance(value, list):
        raise BadRequest(f"'{key}' must be a list of strings, got {type_name(value)}")
    texts = require_texts(value, key)
    return V1Request(texts, kserve_call(texts, payload.get("parameters")))


def render_v1(call: TaskCall, results: list[Any]) -> dict[str, Any]:
    if call.task == TASK_KSERVE_FILL_MASK:
        return render_v1_values(results)
    if call.task == TASK_SCORE:
        return {"predictions": [r.as_dict() for r in results]}
    return render_v1_candidates(results)


def render_v1_values(values: list[KServeValue]) -> dict[str, Any]:
    return {"predictions": values}


def render_v1_candidates(results: list[InputPredictions]) -> dict[str, Any]:
    return {"predictions": [render_input(r) for r in results]}


def model_ready(name: str, ready: bool) -> dict[str, Any]:
    return {"name": name, "ready": ready}


def model_list(names: list[str]) -> dict[str, Any]:
    return {"models": names}
