from __future__ import annotations

import pytest

from maskserve.domain import Prediction
from maskserve.errors import BadRequest
from maskserve.params import FillMaskParams
from maskserve.protocols.hf import parse_hf_request, render_hf_response


def test_json_string_input_is_unwrapped() -> None:
    req = parse_hf_request(b'{"inputs": "a [MASK]"}', "application/json")
    assert req.texts == ["a [MASK]"]
    assert req.unwrap
    assert req.params == FillMaskParams()


def test_list_inputs_and_parameters() -> None:
    body = b'{"inputs": ["a [MASK]", "b [MASK]"], "parameters": {"top_k": 2, "targets": ["x"]}}'
    req = parse_hf_request(body, "application/json; charset=utf-8")
    assert req.texts == ["a [MASK]", "b [MASK]"]
    assert not req.unwrap
    assert req.params == FillMaskParams(top_k=2, targets=("x",))


def test_single_element_list_is_unwrapped_like_the_pipeline() -> None:
    assert parse_hf_request(b'{"inputs": ["a [MASK]"]}', "application/json").unwrap


def test_raw_text_body() -> None:
    req = parse_hf_request(b"Paris is the [MASK] of France.", "text/plain")
    assert req.texts == ["Paris is the [MASK] of France."]
    assert req.unwrap
    assert parse_hf_request(b"plain [MASK]", None).texts == ["plain [MASK]"]


def test_json_content_type_demands_json() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_hf_request(b"plain [MASK]", "application/json")


def test_options_are_read() -> None:
    req = parse_hf_request(
        b'{"inputs": "a", "options": {"use_cache": false, "wait_for_model": true}}', "application/json"
    )
    assert req.use_cache is False
    assert req.wait_for_model is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"text": "a"}', "'inputs' is required"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"inputs": 5}', "string or a list of strings"),
        (b'{"inputs": []}', "empty list"),
        (b'{"inputs": "a", "options": 3}', "'options' must be an object"),
        (b'{"inputs": "a", "options": {"use_cache": "no"}}', "true or false"),
        (b'{"inputs": "a", "parameters": {"top_k": "x"}}', "positive integer"),
    ],
)
def test_bad_bodies(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_hf_request(body, "application/json")


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_empty_body_says_inputs_is_missing(body: bytes, content_type: str | None) -> None:
    # Not the pipeline's "No mask_token" for an empty text: nothing was sent at all.
    with pytest.raises(BadRequest, match="'inputs' is missing") as raised:
        parse_hf_request(body, content_type)
    assert "mask_token" not in str(raised.value)


def test_non_utf8_raw_body() -> None:
    with pytest.raises(BadRequest, match="UTF-8"):
        parse_hf_request(b"\xff\xfe\x00[MASK]", "text/plain")


def _p(token: int) -> Prediction:
    return Prediction(score=0.5, token=token, token_str=str(token), sequence=f"s{token}")


def test_render_nests_as_the_pipeline() -> None:
    one_mask = [[_p(1), _p(2)]]
    two_masks = [[_p(1)], [_p(2)]]
    assert render_hf_response([one_mask], unwrap=True) == [
        {"score": 0.5, "token": 1, "token_str": "1", "sequence": "s1"},
        {"score": 0.5, "token": 2, "token_str": "2", "sequence": "s2"},
    ]
    nested = render_hf_response([one_mask, two_masks], unwrap=False)
    assert len(nested) == 2
    assert isinstance(nested[0][0], dict)
    assert isinstance(nested[1][0], list)
    assert nested[1][1][0]["token"] == 2


def test_a_long_option_value_is_not_echoed_whole() -> None:
    body = b'{"inputs": "a [MASK]", "options": {"use_cache": "' + b"y" * 100_000 + b'"}}'
    with pytest.raises(BadRequest, match="true or false") as raised:
        parse_hf_request(body, "application/json")
    assert len(str(raised.value)) < 200


def test_an_unknown_top_level_key_is_refused_with_the_known_ones() -> None:
    with pytest.raises(
        BadRequest,
        match=r"unknown key 'parameter' in the body; the known ones are inputs, parameters, options",
    ):
        parse_hf_request(b'{"inputs": "a [MASK]", "parameter": {"top_k": 2}}', "application/json")
