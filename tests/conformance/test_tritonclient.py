"""tritonclient.http and tritonclient.grpc against a running maskserve. Each runs in its own interpreter
(``clients/triton_client.py``); see conftest."""

from __future__ import annotations

import pytest

from .harness import (
    MODEL,
    ClientRun,
    Reference,
    Server,
    assert_model_metadata,
    assert_output0,
    assert_server_metadata,
    assert_topk_tensors,
    run_python_client,
)

pytestmark = pytest.mark.e2e

HEALTH = ["server_live", "server_ready", "model_ready"]


@pytest.fixture(scope="module")
def triton_http(server: Server) -> ClientRun:
    return run_python_client("triton_client.py", server, "http")


@pytest.fixture(scope="module")
def triton_grpc(server: Server) -> ClientRun:
    return run_python_client("triton_client.py", server, "grpc")


# --- tritonclient.http ---


@pytest.mark.parametrize("case", HEALTH)
def test_http_health(triton_http: ClientRun, case: str) -> None:
    assert triton_http.case(case) is True


def test_http_metadata(triton_http: ClientRun) -> None:
    assert_server_metadata(triton_http.case("server_metadata"))
    assert_model_metadata(triton_http.case("model_metadata"))


@pytest.mark.parametrize(
    ("case", "binary_answer"),
    [
        ("infer_json", False),  # JSON in, output-0 requested with binary_data=False
        ("infer_default_outputs", None),  # no outputs named: the client asks binary_data_output, reads either
        ("infer_binary_input", False),  # binary input tensor after the JSON header, JSON answer
        ("infer_binary_output", True),  # JSON in, output-0 requested with binary_data=True
        ("infer_binary", True),  # binary both ways
    ],
)
def test_http_output0_is_the_engines_top1(
    triton_http: ClientRun, reference: Reference, case: str, binary_answer: bool | None
) -> None:
    answer = triton_http.case(case)
    assert answer["model_name"] == MODEL
    assert_output0(answer["outputs"], reference.top1)
    if binary_answer is not None:
        form = "binary" if answer["outputs"]["output-0"]["binary"] else "as JSON"
        assert answer["outputs"]["output-0"]["binary"] is binary_answer, (
            f"output-0 came back {form} although it was requested with binary_data={binary_answer}"
        )


@pytest.mark.parametrize(
    ("case", "two_masks", "binary"),
    [("top_k_json", False, False), ("top_k_two_masks_json", True, False), ("top_k_binary", False, True)],
)
def test_http_top_k_outputs_are_the_engines_candidates(
    triton_http: ClientRun, reference: Reference, case: str, two_masks: bool, binary: bool
) -> None:
    answer = triton_http.case(case)
    assert answer["model_name"] == MODEL
    assert_topk_tensors(answer["outputs"], reference.two_masks if two_masks else reference.top_k)
    assert {name: t["binary"] for name, t in answer["outputs"].items()} == dict.fromkeys(
        answer["outputs"], binary
    ), f"outputs requested with binary_data={binary} came back in the other form"


# --- tritonclient.grpc ---


@pytest.mark.parametrize("case", HEALTH)
def test_grpc_health(triton_grpc: ClientRun, case: str) -> None:
    assert triton_grpc.case(case) is True


def test_grpc_metadata(triton_grpc: ClientRun) -> None:
    assert_server_metadata(triton_grpc.case("server_metadata"))
    assert_model_metadata(triton_grpc.case("model_metadata"))


@pytest.mark.parametrize("case", ["infer", "infer_default_outputs"])
def test_grpc_output0_is_the_engines_top1(triton_grpc: ClientRun, reference: Reference, case: str) -> None:
    answer = triton_grpc.case(case)
    assert answer["model_name"] == MODEL
    assert_output0(answer["outputs"], reference.top1)


@pytest.mark.parametrize(("case", "two_masks"), [("top_k", False), ("top_k_two_masks", True)])
def test_grpc_top_k_outputs_are_the_engines_candidates(
    triton_grpc: ClientRun, reference: Reference, case: str, two_masks: bool
) -> None:
    answer = triton_grpc.case(case)
    assert answer["model_name"] == MODEL
    assert_topk_tensors(answer["outputs"], reference.two_masks if two_masks else reference.top_k)
