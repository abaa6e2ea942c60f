from __future__ import annotations

import logging

import pytest

from maskserve.errors import BadRequest, clip, preview
from maskserve.params import FillMaskParams
from maskserve.protocols.common import load_json, require_texts
from maskserve.protocols.params import parse_params


def test_load_json_rejects_empty_and_broken_bodies() -> None:
    with pytest.raises(BadRequest, match="empty"):
        load_json(b"  ")
    with pytest.raises(BadRequest, match="not valid JSON"):
        load_json(b'{"inputs": ')
    assert load_json(b'{"a": 1}') == {"a": 1}


def test_deeply_nested_inputs_are_a_bad_request() -> None:
    # Depending on the orjson version the parser refuses the depth itself or the shape check does.
    with pytest.raises(BadRequest, match=r"depth limit|must be a string"):
        require_texts(load_json(b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")["inputs"], "inputs")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ({}, None),
        ({"other": 1}, None),
        ({"top_k": 3}, FillMaskParams(top_k=3)),
        ({"top_k": 3.0}, FillMaskParams(top_k=3)),
        ({"targets": "paris"}, FillMaskParams(targets=("paris",))),
        ({"top_k": 2, "targets": ["a", "b"]}, FillMaskParams(top_k=2, targets=("a", "b"))),
    ],
)
def test_parse_params(raw: object, expected: FillMaskParams | None) -> None:
    assert parse_params(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be an object"),
        ({"top_k": 0}, "at least 1"),
        ({"top_k": -3}, "at least 1"),
        ({"top_k": 2.5}, "positive integer"),
        ({"top_k": True}, "positive integer"),
        ({"top_k": "5"}, "positive integer"),
        # Not expressible in JSON, but gRPC double parameters carry them.
        ({"top_k": float("inf")}, "positive integer"),
        ({"top_k": float("-inf")}, "positive integer"),
        ({"top_k": float("nan")}, "positive integer"),
        ({"targets": 5}, "string or a list of strings"),
        ({"targets": [1, 2]}, "string or a list of strings"),
        ({"targets": []}, "empty"),
        ({"targets": [""]}, "empty"),
    ],
)
def test_parse_params_rejects(raw: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_params(raw)


def test_require_texts() -> None:
    assert require_texts("a", "inputs") == ["a"]
    assert require_texts(["a", "b"], "inputs") == ["a", "b"]
    with pytest.raises(BadRequest, match="empty list"):
        require_texts([], "inputs")
    with pytest.raises(BadRequest, match=r"inputs\[1\]' must be a string, got an integer"):
        require_texts(["a", 3], "inputs")
    with pytest.raises(BadRequest, match="got an object"):
        require_texts({"a": 1}, "inputs")


def test_clip_and_preview_keep_short_values_and_cut_long_ones() -> None:
    assert clip("input-0") == "input-0"
    assert preview("yes") == "'yes'"
    assert clip("x" * 5000) == "x" * 40 + "..."
    assert preview("x" * 5000) == "'" + "x" * 39 + "..."


def test_a_long_top_k_is_not_echoed_whole() -> None:
    with pytest.raises(BadRequest, match="positive integer") as raised:
        parse_params({"top_k": "9" * 100_000})
    assert len(str(raised.value)) < 200


def test_unknown_keys_are_refused_on_the_hf_api_and_logged_once_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(BadRequest, match="unknown parameter 'topk'"):
        parse_params({"topk": 3}, strict=True)
    with caplog.at_level(logging.DEBUG, logger="maskserve"):
        for _ in range(3):
            assert parse_params({"x-unknown-extension-key": 1, "top_k": 2}) == FillMaskParams(top_k=2)
    lines = [r for r in caplog.records if "x-unknown-extension-key" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.DEBUG
