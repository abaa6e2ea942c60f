from __future__ import annotations

import pytest

from maskserve.errors import BadRequest
from maskserve.params import FillMaskParams
from maskserve.protocols.kserve_v1 import parse_v1_request, render_v1_values


def test_instances() -> None:
    req = parse_v1_request(b'{"instances": ["The capital of France is [MASK]."]}')
    assert req.texts == ["The capital of France is [MASK]."]
    assert req.params is None


def test_inputs_key_wins_as_in_kserve() -> None:
    req = parse_v1_request(b'{"inputs": ["a [MASK]"], "instances": ["ignored"]}')
    assert req.texts == ["a [MASK]"]


def test_parameters_switch_to_candidates() -> None:
    req = parse_v1_request(b'{"instances": ["a [MASK]"], "parameters": {"top_k": 3}}')
    assert req.params == FillMaskParams(top_k=3)


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
