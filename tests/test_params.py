"""The one declaration of the task parameters: it parses (with messages that name the parameter), it is
hashable as a cache key, and its bounds are what OpenAPI and the playground show."""

from __future__ import annotations

import pytest

from maskserve.errors import BadRequest
from maskserve.params import MAX_NUM_BEAMS, MAX_SUBWORDS, FillMaskParams, bounds


def test_parsed_and_constructed_parameters_are_equal_cache_keys() -> None:
    parsed = FillMaskParams.parse({"top_k": 3.0, "targets": "paris", "unknown": 1, "decoding": None})
    built = FillMaskParams(top_k=3, targets=("paris",))
    assert parsed == built
    assert hash(parsed) == hash(built)
    assert {parsed: "answer"}[built] == "answer"
    assert parsed.model_fields_set == {"top_k", "targets"}  # null counts as absent


@pytest.mark.parametrize(
    ("raw", "where", "message"),
    [
        ({"top_k": 0}, "parameters", "'parameters.top_k' must be at least 1, got 0"),
        ({"whole_word": True, "max_subwords": 9}, "params", "'params.max_subwords' must be at most 8, got 9"),
        ({"decoding": "beam"}, "parameters", "'parameters.decoding' must be one of 'independent', 'joint'"),
        ({"targets": ["cat"], "whole_word": True}, "parameters", "to score given words use 'targets'"),
    ],
)
def test_messages_name_the_parameter_where_the_client_wrote_it(
    raw: dict[str, object], where: str, message: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        FillMaskParams.parse(raw, where)
    assert message in str(raised.value)


def test_bounds_are_the_declared_ones() -> None:
    found = bounds(FillMaskParams)
    assert found["top_k"] == {"default": 5, "min": 1}
    assert found["max_subwords"] == {"default": 3, "min": 1, "max": MAX_SUBWORDS}
    assert found["num_beams"] == {"default": None, "min": 1, "max": MAX_NUM_BEAMS}
    assert found["decoding"]["choices"] == ["independent", "joint"]


def test_the_json_schema_shows_the_bounds_and_both_forms_of_targets() -> None:
    schema = FillMaskParams.model_json_schema()
    props = schema["properties"]
    assert props["max_subwords"]["maximum"] == MAX_SUBWORDS
    assert props["top_k"]["minimum"] == 1
    assert {"type": "string"} in props["targets"]["anyOf"]
    assert schema["additionalProperties"] is False
