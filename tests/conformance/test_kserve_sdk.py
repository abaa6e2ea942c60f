"""The kserve SDK 0.21 (``InferenceRESTClient`` V1 and V2, ``InferenceGRPCClient``) against a running
maskserve. The SDK runs in its own interpreter (``clients/kserve_client.py``); see conftest."""

from __future__ import annotations

import pytest

from .harness import (
    MODEL,
    TEXTS,
    ClientRun,
    Reference,
    Server,
    assert_model_metadata,
    assert_output0,
    assert_predictions,
    assert_server_metadata,
    assert_topk_tensors,
    run_python_client,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def kserve(server: Server) -> ClientRun:
    return run_python_client("kserve_client.py", server)


@pytest.mark.parametrize(
    "case",
    [
        "v1_server_live",
        "v1_model_ready",
        "v2_server_live",
        "v2_server_ready",
        "v2_model_ready",
        "grpc_server_live",
        "grpc_server_ready",
        "grpc_model_ready",
    ],
)
def test_health(kserve: ClientRun, case: str) -> None:
    assert kserve.case(case) is True


def test_v1_predict_is_the_engines_top1(kserve: ClientRun, reference: Reference) -> None:
    assert kserve.case("v1_predict") == {"predictions": reference.top1}


def test_v1_predict_with_top_k_is_the_engines_candidates(kserve: ClientRun, reference: Reference) -> None:
    predictions = kserve.case("v1_predict_top_k")["predictions"]
    assert len(predictions) == len(TEXTS)
    for got, expected in zip(predictions, reference.top_k, strict=True):
        assert_predictions(got, expected[0])


@pytest.mark.parametrize(
    "case",
    [
        "v2_infer_list",  # InferInput(data=[str, ...]): a JSON tensor
        "v2_infer_numpy_json",  # InferInput(data=ndarray): the SDK sends it as JSON
        # set_data_from_numpy(binary_data=True): the binary tensor extension (Inference-Header-Content-Length)
        "v2_infer_binary",
        "grpc_infer_typed",  # InferTensorContents.bytes_contents
        "grpc_infer_raw",  # raw_input_contents, answered raw
    ],
)
def test_v2_output0_is_the_engines_top1(kserve: ClientRun, reference: Reference, case: str) -> None:
    answer = kserve.case(case)
    assert answer["model_name"] == MODEL
    assert_output0(answer["outputs"], reference.top1)


@pytest.mark.parametrize("case", ["v2_infer_top_k", "grpc_infer_top_k"])
def test_v2_top_k_outputs_are_the_engines_candidates(
    kserve: ClientRun, reference: Reference, case: str
) -> None:
    answer = kserve.case(case)
    assert answer["model_name"] == MODEL
    assert_topk_tensors(answer["outputs"], reference.top_k)


def test_grpc_metadata(kserve: ClientRun) -> None:
    assert_server_metadata(kserve.case("grpc_server_metadata"))
    assert_model_metadata(kserve.case("grpc_model_metadata"))
