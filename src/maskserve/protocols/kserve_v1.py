"""KServe's V1 protocol: ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskserve.domain import TASK_FILL_MASK, TASK_KSERVE_FILL_MASK, InputPredictions, KServeValue, TaskCall
from maskserve.errors import BadRequest
from maskserve.params import FillMaskParams
from maskserve.protocols.common import load_json, require_texts, type_name
from maskserve.protocols.hf import render_input
from maskserve.protocols.params import parse_params, unknown_warnings


@dataclass(frozen=True)
class V1Request:
    texts: list[str]
    # Set when the caller asked for top_k/targets: the answer is then the pipeline's candidates per input.
    params: FillMaskParams | None
    warnings: tuple[str, ...] = ()

    @property
    def call(self) -> TaskCall:
        if self.params is not None:
            return TaskCall(TASK_FILL_MASK, self.texts, self.params, self.warnings)
        return TaskCall(TASK_KSERVE_FILL_MASK, self.texts, FillMaskParams(), self.warnings)


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
    raw = payload.get("parameters")
    params = parse_params(raw)
    return V1Request(require_texts(value, key), params, tuple(unknown_warnings(raw)))


def render_v1(call: TaskCall, results: list[Any]) -> dict[str, Any]:
    if call.task == TASK_KSERVE_FILL_MASK:
        return render_v1_values(results)
    return render_v1_candidates(results)


def render_v1_values(values: list[KServeValue]) -> dict[str, Any]:
    return {"predictions": values}


def render_v1_candidates(results: list[InputPredictions]) -> dict[str, Any]:
    return {"predictions": [render_input(r) for r in results]}


def model_ready(name: str, ready: bool) -> dict[str, Any]:
    return {"name": name, "ready": ready}


def model_list(names: list[str]) -> dict[str, Any]:
    return {"models": names}
