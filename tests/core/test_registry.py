"""The registry without HTTP: loading on a thread, one load for concurrent asks, the budget kept (the least
recently used idle model unloaded first, a busy one drained and unloaded when every model is busy, a model
too large refused), waiting through an eviction, observers told of every event, the states the index
reads."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from maskserve.core.budget import Budget
from maskserve.core.registry import ModelRegistry
from maskserve.core.slot import ModelSlot, ModelState
from maskserve.errors import MaskserveError, ModelNotFoundError, NotFound
from support.info import model_info
from support.waiting import until


class FakeEngine:
    """What the registry reads of an engine."""

    def __init__(self, name: str, weight_bytes: int = 100) -> None:
        self.info = model_info(name=name, model_id=name)
        self.weight_bytes = weight_bytes
        self.active = 0
        self.last_used = time.monotonic()
        self.closed = False
        self.idle = asyncio.Event()

    def finish(self) -> None:
        """The requests in flight are done."""
        self.active = 0
        self.idle.set()

    async def drained(self) -> None:
        if self.active:
            await self.idle.wait()

    async def aclose(self) -> None:
        self.closed = True


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    def on_state(self, name: str, state: ModelState) -> None:
        self.seen.append(("state", name, state.value))

    def on_load(self, name: str, seconds: float, ok: bool) -> None:
        self.seen.append(("load", name, "ok" if ok else "failed"))

    def on_unload(self, name: str, evicted: bool) -> None:
        self.seen.append(("evicted" if evicted else "unload", name))

    def on_wait(self, name: str, seconds: float) -> None:
        self.seen.append(("waited", name))

    def on_resident(self, name: str, loaded: int, weight_bytes: int) -> None:
        self.seen.append(("resident", name, str(loaded), str(weight_bytes)))


def _registry(budget: Budget | None = None, fail: set[str] | None = None) -> tuple[ModelRegistry, list[str]]:
    loads: list[str] = []
    lock = threading.Lock()

    def loader(slot: ModelSlot) -> Any:
        with lock:
            loads.append(slot.name)
        if slot.name in (fail or set()):
            raise ModelNotFoundError(f"{slot.name} is nowhere")
        return FakeEngine(slot.name)

    registry = ModelRegistry(loader, budget=budget)
    for name in ("a", "b", "c"):
        registry.add(ModelSlot(name, source=name, state=ModelState.UNAVAILABLE))
    return registry, loads


async def test_concurrent_asks_start_one_load() -> None:
    registry, loads = _registry()
    slot = registry.get("a")
    engines = await asyncio.gather(*(registry.wait_loaded(slot, 30) for _ in range(5)))
    assert loads == ["a"]
    assert len({id(e) for e in engines}) == 1
    assert slot.state is ModelState.READY


async def test_the_budget_unloads_the_least_recently_used_idle_model() -> None:
    registry, _ = _registry(Budget(max_models=2))
    a = await registry.wait_loaded(registry.get("a"), 30)
    await registry.wait_loaded(registry.get("b"), 30)
    a.last_used = time.monotonic() + 1  # a was used after b
    await registry.wait_loaded(registry.get("c"), 30)
    assert sorted(s.name for s in registry.loaded()) == ["a", "c"]
    assert registry.get("b").state is ModelState.UNAVAILABLE


async def test_when_every_model_is_busy_one_drains_and_goes_the_budget_holds() -> None:
    registry, _ = _registry(Budget(max_models=1))
    a = await registry.wait_loaded(registry.get("a"), 30)
    a.active = 1  # a request in flight
    b_load = asyncio.ensure_future(registry.wait_loaded(registry.get("b"), 30))
    await until(lambda: registry.get("a").state is ModelState.UNLOADING, "a stops taking requests")
    assert not b_load.done()  # b waits for a's request, never loads beside it
    assert [s.name for s in registry.loaded()] == ["a"]
    # A request for a now waits for a's next load rather than failing.
    a_again = asyncio.ensure_future(registry.wait_loaded(registry.get("a"), 30))
    a.finish()
    assert (await b_load).info.name == "b"
    assert (await a_again).info.name == "a"  # ... which came after b, evicting it (b was idle)
    assert a.closed
    assert [s.name for s in registry.loaded()] == ["a"]


async def test_a_model_larger_than_the_whole_budget_is_refused() -> None:
    registry, _ = _registry(Budget(max_bytes=50))
    with pytest.raises(MaskserveError, match=r"more than the model budget allows on its own") as raised:
        await registry.wait_loaded(registry.get("a"), 30)
    assert raised.value.status == 507
    assert registry.loaded() == []


async def test_observers_hear_every_event_and_states_read_the_index() -> None:
    registry, _ = _registry(fail={"c"})
    events = Events()
    registry.add_observer(events)
    await registry.wait_loaded(registry.get("a"), 30)
    await registry.unload("a")
    with pytest.raises(Exception, match="nowhere"):
        await registry.wait_loaded(registry.get("c"), 30)
    names = [e for e in events.seen if e[1] == "a"]
    assert names == [
        ("state", "a", "unavailable"),
        ("state", "a", "loading"),
        ("state", "a", "ready"),
        ("load", "a", "ok"),
        ("resident", "a", "1", "100"),
        ("waited", "a"),
        ("state", "a", "unloading"),
        ("state", "a", "unavailable"),
        ("unload", "a"),
        ("resident", "a", "0", "0"),
    ]
    assert ("load", "c", "failed") in events.seen
    assert registry.states() == [
        ("a", "unavailable", None),
        ("b", "unavailable", None),
        ("c", "failed", "c is nowhere"),
    ]


def test_unknown_names_are_a_404_listing_the_served_ones() -> None:
    registry, _ = _registry()
    with pytest.raises(NotFound, match="Models served here: a, b, c"):
        registry.get("d")
