from __future__ import annotations

import pytest

from maskserve.domain import TASK_FILL_MASK, TASK_KSERVE_FILL_MASK, TASK_SCORE
from maskserve.errors import BadRequest
from maskserve.params import FillMaskParams, ScoreParams
from maskserve.protocols.kserve_v1 import parse_v1_request, render_v1_values


def test_instances() -> None:
    req = parse_v1_request(b'{"instances": ["The capital of France is [MASK]."]}')
    assert req.texts == ["The capital of France is [MASK]."]
    assert req.call.task == TASK_KSERVE_FILL_MASK  # KServe's own answer


def test_inputs_key_wins_as_in_kserve() -> None:
    req = parse_v1_request(b'{"inputs": ["a [MASK]"], "instances": ["ignored"]}')
    assert req.texts == ["a [MASK]"]


def test_parameters_switch_to_candidates() -> None:
    req = parse_v1_request(b'{"instances": ["a [MASK]"], "parameters": {"top_k": 3}}')
    assert (req.call.task, req.call.params) == (TASK_FILL_MASK, FillMaskParams(top_k=3))


def test_the_task_parameter_asks_for_a_score() -> None:
    req = parse_v1_request(
        b'{"instances": ["a b"], "parameters": {"task": "score", "metric": "token", "x": 1}}'
    )
    assert (req.call.task, req.call.params) == (TASK_SCORE, ScoreParams(metric="token"))
    assert len(req.call.warnings) == 1  # task is a known key, x is not
    assert "'x'" in req.call.warnings[0]
    with pytest.raises(
        BadRequest, match=r"'parameters\.task' must be one of 'fill-mask', 'score', got 'translate'"
    ):
        parse_v1_request(b'{"instances": ["a"], "parameters": {"task": "translate"}}')


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"foo": 1}', "'instances' is required"),
        (b'{"instances": "a [MASK]"}', "must be a list"),
        (b'{"instances": []}', "empty list"),
        (b'{"instances": [{"text": "a"}]}', r"instances\[0\]' must be a string"),
        (b'"a [MASK]"', "must be a JSON object"),
    ],
)
def test_bad_bodies(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_v1_request(body)


def test_render() -> None:
    assert render_v1_values(["paris", "france"]) == {"predictions": ["paris", "france"]}
