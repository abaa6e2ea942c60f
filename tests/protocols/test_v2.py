from __future__ import annotations

import orjson
import pytest

from maskserve.domain import Prediction
from maskserve.errors import BadRequest
from maskserve.protocols import v2
from support.info import model_info

INFO = model_info()

GUIDE = {
    "inputs": [
        {
            "name": "input-0",
            "shape": [2],
            "datatype": "BYTES",
            "data": ["The capital of France is [MASK].", "The capital of [MASK] is paris."],
        }
    ]
}


def _req(payload: object) -> v2.InferenceRequest:
    return v2.parse_infer_request(orjson.dumps(payload))


def test_guide_request_decodes() -> None:
    assert v2.decode_texts(_req(GUIDE)) == GUIDE["inputs"][0]["data"]  # type: ignore[index]


def test_nested_data_is_flattened_row_major() -> None:
    req = _req({"inputs": [{"name": "t", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]}]})
    assert v2.decode_texts(req) == ["a", "b"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"inputs": []}, "exactly one input"),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]}] * 2},
            "exactly one input",
        ),
        ({"inputs": [{"name": "a", "shape": [2], "datatype": "BYTES", "data": ["x"]}]}, "2 elements"),
        ({"inputs": [{"name": "a", "shape": [1], "datatype": "INT64", "data": [1]}]}, "BYTES"),
        ({"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": [1]}]}, "must be a string"),
        ({"inputs": [{"name": "a", "shape": [-1], "datatype": "BYTES", "data": ["x"]}]}, "negative"),
        ({"inputs": [{"name": "a", "shape": [0], "datatype": "BYTES", "data": []}]}, "empty"),
        ({"inputs": [{"name": "a", "datatype": "BYTES", "data": ["x"]}]}, "shape"),
        ({"inputs": [{"name": "a", "shape": "2", "datatype": "BYTES", "data": ["x"]}]}, "shape"),
        ({"inputs": "x"}, "inputs"),
    ],
)
def test_bad_requests(payload: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        v2.decode_texts(_req(payload))


def test_hostile_nesting_is_a_bad_request() -> None:
    data = ["x"]
    for _ in range(10_000):
        data = [data]
    req = _req({"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": [1]}]})
    req.inputs[0].data = data
    with pytest.raises(BadRequest, match="nested more than"):
        v2.decode_texts(req)


def test_non_object_body() -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        v2.parse_infer_request(b"[1]")


def test_outputs_selection() -> None:
    assert v2.requested_topk(_req(GUIDE)) is None
    with_topk = _req({**GUIDE, "outputs": [{"name": "score"}, {"name": "token_str"}]})
    assert v2.requested_topk(with_topk) == ["score", "token_str"]
    with pytest.raises(BadRequest, match="unknown output 'logits'"):
        v2.requested_topk(_req({**GUIDE, "outputs": [{"name": "logits"}]}))
    with pytest.raises(BadRequest, match="not both"):
        v2.requested_topk(_req({**GUIDE, "outputs": [{"name": "output-0"}, {"name": "score"}]}))


def test_kserve_response_matches_the_guide_shape() -> None:
    req = _req({**GUIDE, "id": "abc"})
    body = v2.render_kserve_values(INFO, req, ["paris", "france"]).model_dump(mode="json")
    assert body == {
        "model_name": "bert",
        "model_version": None,
        "id": "abc",
        "parameters": None,
        "outputs": [
            {
                "name": "output-0",
                "shape": [2],
                "datatype": "BYTES",
                "parameters": None,
                "data": ["paris", "france"],
            }
        ],
    }
    generated = v2.render_kserve_values(INFO, _req(GUIDE), ["a", "b"]).id
    assert len(generated) == 36


def test_distributions_become_json_strings() -> None:
    body = v2.render_kserve_values(INFO, _req(GUIDE), [{"0": 0.25, "1": 0.75}, [{"0": 1.0}, {"1": 2.0}]])
    data = body.outputs[0].data
    assert orjson.loads(data[0]) == {"0": 0.25, "1": 0.75}
    assert orjson.loads(data[1]) == [{"0": 1.0}, {"1": 2.0}]


def _pred(token: int) -> Prediction:
    return Prediction(score=token / 10, token=token, token_str=f"t{token}", sequence=f"s{token}")


def test_topk_shapes() -> None:
    one_mask = [[[_pred(1), _pred(2)]], [[_pred(3), _pred(4)]]]
    out = v2.render_topk(INFO, _req(GUIDE), one_mask, ["token", "score"]).outputs
    assert [o.name for o in out] == ["token", "score"]
    assert out[0].shape == [2, 2]
    assert out[0].datatype == "INT64"
    assert out[0].data == [1, 2, 3, 4]
    assert out[1].datatype == "FP32"
    two_masks = [[[_pred(1)], [_pred(2)]], [[_pred(3)], [_pred(4)]]]
    out = v2.render_topk(INFO, _req(GUIDE), two_masks, ["token_str"]).outputs
    assert out[0].shape == [2, 2, 1]
    assert out[0].data == ["t1", "t2", "t3", "t4"]
    with pytest.raises(BadRequest, match="same number of masks"):
        v2.render_topk(INFO, _req(GUIDE), [[[_pred(1)]], [[_pred(2)], [_pred(3)]]], ["token"])


def test_metadata() -> None:
    meta = v2.model_metadata(INFO)
    assert meta.name == "bert"
    assert meta.inputs[0].datatype == "BYTES"
    assert {o.name for o in meta.outputs} == {"output-0", "token_str", "score", "token", "sequence"}
    assert v2.server_metadata("1.0", []).model_dump() == {
        "name": "maskserve",
        "version": "1.0",
        "extensions": [],
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"inputs": [{"name": "n" * 100_000, "shape": [1], "datatype": "BYTES", "data": [1]}]},
        {"inputs": [{"name": "t", "shape": [1], "datatype": "B" * 100_000, "data": ["a"]}]},
        {"inputs": [{"name": "t", "shape": [1] * 20_000, "datatype": "BYTES", "data": []}]},
        {
            "inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
            "outputs": [{"name": "o" * 100_000}],
        },
    ],
    ids=["name", "datatype", "shape", "output"],
)
def test_long_client_values_are_not_echoed_whole(payload: object) -> None:
    # Messages quote names, datatypes and shapes the client sent; a hostile one must not fill the answer.
    request = _req(payload)

    def check() -> None:
        v2.requested_topk(request)
        v2.decode_texts(request)

    with pytest.raises(BadRequest) as raised:
        check()
    assert len(str(raised.value)) < 300
