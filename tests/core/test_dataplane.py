"""The one data plane: the protocol's waiting policy, a task by its name, the V2 composition both transports
use (warnings in the response parameters)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from maskserve.core.context import RequestContext
from maskserve.core.dataplane import TASKS, DataPlane
from maskserve.core.registry import ModelRegistry
from maskserve.core.slot import ModelSlot, ModelState
from maskserve.core.waiting import HFWait, KServeWait
from maskserve.domain import TASK_FILL_MASK, TASK_KSERVE_FILL_MASK, TASK_SCORE, TaskCall
from maskserve.errors import BadRequest, ModelNotReady
from maskserve.params import FillMaskParams
from maskserve.protocols import v2
from support.engines import engine_for

TEXT = "the [MASK] sat on the mat ."


def _plane(bert_dir: Path, gate: threading.Event | None = None) -> DataPlane:
    """A registry of one model that is not loaded; its load waits for ``gate`` when given."""

    def load(slot: ModelSlot) -> object:
        if gate is not None:
            gate.wait(60)
        return engine_for(bert_dir, model_name="bert", cache_size=0)

    registry = ModelRegistry(load)
    registry.add(ModelSlot("bert", source=str(bert_dir), state=ModelState.UNAVAILABLE))
    return DataPlane(registry)


def test_every_task_is_in_the_table() -> None:
    assert set(TASKS) == {TASK_FILL_MASK, TASK_KSERVE_FILL_MASK, TASK_SCORE}


async def test_kserve_requests_wait_for_a_model_that_loads_on_request(bert_dir: Path) -> None:
    plane = _plane(bert_dir)
    served = await plane.model("bert", KServeWait(60))
    assert served.engine is engine_for(bert_dir, model_name="bert", cache_size=0)


async def test_the_hf_api_answers_503_while_loading_unless_asked_to_wait(bert_dir: Path) -> None:
    gate = threading.Event()
    plane = _plane(bert_dir, gate)
    with pytest.raises(ModelNotReady, match="Model bert is currently loading") as raised:
        await plane.model("bert", HFWait(wait=False, max_wait_s=60))
    assert raised.value.estimated_time is not None
    assert plane.registry.get("bert").state is ModelState.LOADING  # the 503 started the load
    gate.set()
    waited = await plane.model("bert", HFWait(wait=True, max_wait_s=60))
    assert waited.engine is engine_for(bert_dir, model_name="bert", cache_size=0)


async def test_run_is_the_engines_answer_and_an_unknown_task_is_a_400(bert_dir: Path) -> None:
    plane = _plane(bert_dir)
    served = await plane.model("bert", KServeWait(60))
    params = FillMaskParams(top_k=2)
    got = await plane.run(served, TaskCall(TASK_FILL_MASK, [TEXT], params), RequestContext())
    assert got == await served.engine.fill_mask([TEXT], params)
    with pytest.raises(BadRequest, match="unknown task 'translate'"):
        await plane.run(served, TaskCall("translate", [TEXT], params), RequestContext())


async def test_v2_puts_the_requests_warnings_in_its_parameters(bert_dir: Path) -> None:
    plane = _plane(bert_dir)
    served = await plane.model("bert", KServeWait(60))
    request = v2.InferenceRequest.model_validate(
        {
            "inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [TEXT]}],
            "parameters": {"targets": ["Zzxqwv", "cat"]},
        }
    )
    ctx = RequestContext()
    response = await plane.v2_infer(served, request, ctx)
    assert response.parameters is not None
    assert "Zzxqwv" in response.parameters["warning"]
    assert ctx.warnings
