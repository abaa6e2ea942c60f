"""huggingface_hub's ``InferenceClient`` and ``AsyncInferenceClient`` ``fill_mask`` against a running
maskserve, by ``base_url`` (``POST /``) and by model URL (``POST /models/bert``). In-process: huggingface_hub
imports no gRPC stubs."""

from __future__ import annotations

from typing import Any

import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient, constants

from .harness import HF_TARGETS, HF_TEXT, HF_TOP_K, MODEL, Reference, Server, assert_predictions

pytestmark = pytest.mark.e2e

ADDRESSING = ["base_url", "model_url"]


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite runs with HF_HUB_OFFLINE=1 so nothing reaches the Hub; these clients only talk to loopback.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _kwargs(server: Server, addressing: str) -> dict[str, Any]:
    if addressing == "base_url":
        return {"base_url": server.base}
    return {"model": f"{server.base}/models/{MODEL}"}


@pytest.mark.parametrize("addressing", ADDRESSING)
def test_sync_fill_mask_with_top_k_and_targets(server: Server, reference: Reference, addressing: str) -> None:
    client = InferenceClient(**_kwargs(server, addressing), timeout=30)
    answer = client.fill_mask(HF_TEXT, top_k=HF_TOP_K, targets=HF_TARGETS)
    assert_predictions(answer, reference.hf_targets)


@pytest.mark.parametrize("addressing", ADDRESSING)
def test_sync_fill_mask_defaults(server: Server, reference: Reference, addressing: str) -> None:
    client = InferenceClient(**_kwargs(server, addressing), timeout=30)
    assert_predictions(client.fill_mask(HF_TEXT), reference.hf_default)


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("addressing", ADDRESSING)
async def test_async_fill_mask_with_top_k_and_targets(
    server: Server, reference: Reference, addressing: str
) -> None:
    async with AsyncInferenceClient(**_kwargs(server, addressing), timeout=30) as client:
        answer = await client.fill_mask(HF_TEXT, top_k=HF_TOP_K, targets=HF_TARGETS)
    assert_predictions(answer, reference.hf_targets)


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("addressing", ADDRESSING)
async def test_async_fill_mask_defaults(server: Server, reference: Reference, addressing: str) -> None:
    async with AsyncInferenceClient(**_kwargs(server, addressing), timeout=30) as client:
        answer = await client.fill_mask(HF_TEXT)
    assert_predictions(answer, reference.hf_default)
