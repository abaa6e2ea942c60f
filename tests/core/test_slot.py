from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from maskserve.core.engine import Engine
from maskserve.core.slot import ModelSlot, ModelState
from maskserve.errors import ModelNotReady, NotFound
from support.engines import engine_for
from support.waiting import HANG_S, until


def test_loading_slot_answers_503_with_an_estimate(bert_dir: Path) -> None:
    slot = ModelSlot("bert", "org/bert", expected_load_s=40)
    with pytest.raises(ModelNotReady, match="Model with name bert is not ready") as info:
        slot.engine_or_raise()
    assert info.value.estimated_time is not None
    assert 1 <= info.value.estimated_time <= 40
    assert int(info.value.headers["Retry-After"]) >= 1
    with pytest.raises(ModelNotReady, match="Model org/bert is currently loading"):
        slot.engine_or_raise(loading_message="Model org/bert is currently loading")
    slot.check_name("bert")
    slot.check_name("org/bert")
    with pytest.raises(NotFound):
        slot.check_name("other")


def test_states_reach_listeners_in_order(bert_dir: Path) -> None:
    seen: list[ModelState] = []
    slot = ModelSlot("model")
    slot.add_listener(seen.append)
    engine = engine_for(bert_dir)
    slot.set_ready(engine)
    assert slot.engine_or_raise() is engine
    slot.set_stopping()
    assert seen == [ModelState.LOADING, ModelState.READY, ModelState.STOPPING]
    # In-flight and late requests still reach the engine while the listener closes.
    assert slot.engine_or_raise() is engine


def test_failed_slot_says_why() -> None:
    slot = ModelSlot("m")
    slot.set_failed("no such repo")
    with pytest.raises(ModelNotReady, match="failed to load: no such repo"):
        slot.engine_or_raise()


async def _waiting(slot: ModelSlot, waiter: asyncio.Future[Engine]) -> None:
    """Until ``waiter`` is inside ``wait_engine``, waiting for a change of state (otherwise a state set
    before it ran would be seen at once, and the test would not show that the waiter is woken)."""
    await until(lambda: slot._changed is not None or waiter.done(), "the waiter waits for the model")
    assert not waiter.done()


async def test_wait_engine_returns_once_ready_and_times_out_otherwise(bert_dir: Path) -> None:
    engine = engine_for(bert_dir)
    slot = ModelSlot("model")
    with pytest.raises(ModelNotReady):
        await slot.wait_engine(0.05)
    fresh = ModelSlot("model")  # one that nobody has waited on yet
    waiter = asyncio.ensure_future(fresh.wait_engine(3600))
    await _waiting(fresh, waiter)
    fresh.set_ready(engine)
    # Long before its hour is up: the waiter wakes when the model is ready, not when its time runs out.
    assert await asyncio.wait_for(waiter, HANG_S) is engine


async def test_wait_engine_fails_fast_when_loading_fails() -> None:
    slot = ModelSlot("model")
    waiter = asyncio.ensure_future(slot.wait_engine(3600))
    await _waiting(slot, waiter)
    slot.set_failed("boom")
    with pytest.raises(ModelNotReady, match="boom"):
        await asyncio.wait_for(waiter, HANG_S)


def test_a_draining_slot_is_not_ready_but_still_serves(bert_dir: Path) -> None:
    slot = ModelSlot.ready_with(engine_for(bert_dir))
    slot.require_ready()
    slot.set_stopping()
    with pytest.raises(ModelNotReady, match="shutting down"):
        slot.require_ready()
    assert slot.engine_or_raise() is slot.engine
