"""The models one process serves, by name: the model repository.

Every model has a slot (its state and, once loaded, its engine). Models named at start load in order while
they fit the budget; the others are UNAVAILABLE and load on their first request or through the repository
API; Hub ids that an operator allowed (``--hub_models``) get a slot on their first request. Loading runs on
a thread (downloads and weights must not block the event loop); every state change happens on the loop.

The budget (``--max_models``, ``--memory_budget``) always holds: loads run one at a time, and before one
runs, room is made by unloading the least recently used idle model, or, when every loaded model is busy,
the least recently used busy one, which stops taking new requests and finishes those in flight first
(core/budget.py chooses). Requests for a model being unloaded wait for it to load again, as the protocol's
policy says (core/waiting.py). Each model has its own batcher and model threads, so a flood on one model
queues behind that model only.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from maskserve.core.budget import Budget, Resident
from maskserve.core.daemon import in_daemon_thread
from maskserve.core.engine import Engine
from maskserve.core.memory import release_memory
from maskserve.core.slot import ModelSlot, ModelState
from maskserve.errors import MaskserveError, ModelLoadError, ModelNotReady, ModelTooLarge, NotFound

logger = logging.getLogger(__name__)

# Loads the model of a slot into an engine; blocking (runs on a thread).
Loader = Callable[[ModelSlot], Engine]
# Names shown in a 404: enough to spot a typo, never a page of them.
_NAMES_SHOWN = 10


class Observer(Protocol):
    """Told of what happens to the models (metrics attach this way, core/registry_metrics.py)."""

    def on_state(self, name: str, state: ModelState) -> None: ...

    def on_load(self, name: str, seconds: float, ok: bool) -> None: ...

    def on_unload(self, name: str, evicted: bool) -> None:
        """``evicted``: unloaded to make room for another model."""
        ...

    def on_wait(self, name: str, seconds: float) -> None:
        """A request waited ``seconds`` for ``name`` to load."""
        ...

    def on_resident(self, name: str, loaded: int, weight_bytes: int) -> None:
        """After ``name`` loaded (its weight bytes) or unloaded (0): ``loaded`` models are in memory."""
        ...


class ModelRegistry:
    def __init__(
        self,
        loader: Loader | None = None,
        *,
        budget: Budget | None = None,
        hub_patterns: Sequence[str] = (),
        retry_after_failure_s: float = 30.0,
        expected_load_s: Callable[[ModelSlot], float] | None = None,
        size_of: Callable[[ModelSlot], int] | None = None,
    ) -> None:
        self._loader = loader
        self.budget = budget or Budget()
        self.hub_patterns = tuple(p for p in hub_patterns if p)
        self._observers: list[Observer] = []
        self.retry_after_failure_s = retry_after_failure_s
        self._expected_load_s = expected_load_s or (lambda slot: slot.expected_load_s)
        # A model's weight bytes before it loads (a local folder's files; 0 when it must be fetched first).
        self._size_of = size_of or (lambda slot: 0)
        self._slots: dict[str, ModelSlot] = {}
        self._loads: dict[str, asyncio.Task[None]] = {}
        # The models asked for at start: server readiness waits for them. Those whose start-up load has not
        # ended yet answer V1/V2 with 503 at once, as KServe's server does before it is ready.
        self.start_names: list[str] = []
        self._starting: set[str] = set()
        self._listeners: list[Callable[[bool], None]] = []
        self._stopping = False
        # One load at a time: the budget counts what is loaded, never a model half-loaded beside another.
        self._one_load = asyncio.Lock()
        self._change = asyncio.Event()

    @classmethod
    def single(cls, slot: ModelSlot) -> ModelRegistry:
        """A registry of one model whose slot someone else fills (the single-model server, tests)."""
        registry = cls()
        registry.add(slot, at_start=True)
        return registry

    def add_observer(self, observer: Observer) -> None:
        """Tell ``observer`` of every later event, and of each known model's state now."""
        self._observers.append(observer)
        for slot in self._slots.values():
            observer.on_state(slot.name, slot.state)

    # --- what is there ---

    def add(self, slot: ModelSlot, *, at_start: bool = False) -> ModelSlot:
        if slot.name in self._slots:
            raise ValueError(f"two models are named {slot.name!r}; give each a name of its own")
        self._slots[slot.name] = slot
        if at_start:
            self.start_names.append(slot.name)
            self._starting.add(slot.name)

        def changed(state: ModelState) -> None:
            self._changed(slot, state)

        slot.add_listener(changed)
        return slot

    @property
    def slots(self) -> list[ModelSlot]:
        return list(self._slots.values())

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    def find(self, name: str) -> ModelSlot | None:
        """By served name first, then by Hub id or alias."""
        found = self._slots.get(name)
        if found is not None:
            return found
        return next((s for s in self._slots.values() if s.answers_to(name)), None)

    def default(self) -> ModelSlot:
        """The model of ``POST /`` (the HF API's route without a model): the first one named at start."""
        names = self.start_names or self.names
        if not names:
            raise NotFound("no model is served here; name one in the path: POST /models/{model_id}")
        return self._slots[names[0]]

    def hub_allowed(self, model_id: str) -> bool:
        return "/" in model_id and any(fnmatch.fnmatchcase(model_id, p) for p in self.hub_patterns)

    def get(self, name: str, *, allow_hub: bool = False) -> ModelSlot:
        """The slot serving ``name``; with ``allow_hub``, a new UNAVAILABLE slot for an allowed Hub id.
        Else KServe's 404, listing (some of) the names that exist."""
        found = self.find(name)
        if found is not None:
            return found
        if allow_hub and self.hub_allowed(name):
            slot = ModelSlot(name, name, source=f"hf://{name}", state=ModelState.UNAVAILABLE)
            return self.add(slot)
        names = self.names
        shown = ", ".join(names[:_NAMES_SHOWN]) + (
            f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else ""
        )
        raise NotFound(f"Model with name {name} does not exist. Models served here: {shown or 'none'}.")

    # --- readiness ---

    @property
    def ready(self) -> bool:
        """Every model asked for at start has settled (loaded, or failed for good) and one serves; with no
        model asked for at start (on-demand only), ready at once."""
        if self._stopping:
            return False
        start = [self._slots[n] for n in self.start_names if n in self._slots]
        if not start:
            return True
        settled = all(s.state in (ModelState.READY, ModelState.FAILED, ModelState.UNAVAILABLE) for s in start)
        return settled and any(s.state is ModelState.READY for s in self._slots.values())

    def add_listener(self, listener: Callable[[bool], None]) -> None:
        """``listener(ready)`` now and at every change of any model's state."""
        self._listeners.append(listener)
        listener(self.ready)

    def _changed(self, slot: ModelSlot, state: ModelState) -> None:
        self._change.set()
        self._change = asyncio.Event()
        for observer in self._observers:
            observer.on_state(slot.name, state)
        ready = self.ready
        for listener in self._listeners:
            listener(ready)

    def require_ready(self) -> None:
        if not self.ready:
            waiting = [n for n in self.start_names if self._slots[n].state is not ModelState.READY]
            if len(self._slots) == 1:
                raise self._slots[self.start_names[0]].not_ready()
            raise ModelNotReady(f"not ready: waiting for {', '.join(waiting) or 'shutdown to end'}")

    def set_stopping(self) -> None:
        self._stopping = True
        for slot in self._slots.values():
            slot.set_stopping()

    # --- loading and unloading ---

    def loaded(self) -> list[ModelSlot]:
        return [
            s for s in self._slots.values() if s.engine is not None and s.state is not ModelState.UNAVAILABLE
        ]

    def bytes_in_use(self) -> int:
        return sum(s.engine.weight_bytes for s in self.loaded() if s.engine is not None)

    def start_load(self, slot: ModelSlot) -> None:
        """Begin loading ``slot`` unless it is loaded or loading (so concurrent requests start one load).
        A failed model loads again only after the back-off."""
        if self._loader is None or slot.name in self._loads or self._stopping:
            return
        if slot.state in (ModelState.READY, ModelState.STOPPING, ModelState.UNLOADING):
            return
        recent = slot.failed_at is not None and time.monotonic() - slot.failed_at < self.retry_after_failure_s
        if slot.state is ModelState.FAILED and recent:
            return
        if slot.state is not ModelState.LOADING:  # a slot made LOADING at start keeps its estimate
            slot.set_loading(self._expected_load_s(slot))
        self._loads[slot.name] = asyncio.ensure_future(self._load(slot))

    async def _load(self, slot: ModelSlot) -> None:
        assert self._loader is not None
        started = time.monotonic()
        try:
            async with self._one_load:
                # Room first when the size is known (a local folder), again once it is (a Hub download).
                await self._make_room(slot, await asyncio.to_thread(self._size_of, slot))
                engine = await in_daemon_thread(self._loader, slot, f"maskserve-load-{slot.name}")
                try:
                    await self._make_room(slot, engine.weight_bytes)
                except BaseException:
                    await engine.aclose()
                    raise
        except MaskserveError as exc:
            # A load error names its status (404 not found, 400 not a fill-mask model, 502 the Hub); any
            # other failure of a fetch is the upstream's (502).
            status = 502 if type(exc) is ModelLoadError else exc.status
            self._failed(slot, exc.message, status, started)
            return
        except Exception as exc:
            logger.exception("loading %s failed unexpectedly", slot.name)
            self._failed(slot, f"{type(exc).__name__}: {exc}", 500, started)
            return
        finally:
            self._loads.pop(slot.name, None)
            self._starting.discard(slot.name)
        if self._stopping:
            await engine.aclose()
            return
        seconds = time.monotonic() - started
        logger.info(
            "model %s loaded in %.1f s (%d MB of weights)", slot.name, seconds, engine.weight_bytes >> 20
        )
        slot.set_ready(engine)
        for observer in self._observers:
            observer.on_load(slot.name, seconds, True)
            observer.on_resident(slot.name, len(self.loaded()), engine.weight_bytes)

    def _failed(self, slot: ModelSlot, reason: str, status: int, started: float) -> None:
        logger.error("model %s failed to load: %s", slot.name, reason)
        slot.set_failed(reason, status)
        for observer in self._observers:
            observer.on_load(slot.name, time.monotonic() - started, False)

    def residents(self, exclude: ModelSlot | None = None) -> list[Resident]:
        """The loaded models as the budget sees them."""
        return [
            Resident(
                s.name,
                s.engine.weight_bytes,
                busy=s.engine.active > 0,
                last_used=s.engine.last_used,
                leaving=s.state is not ModelState.READY,
            )
            for s in self.loaded()
            if s is not exclude and s.engine is not None
        ]

    def fits(self, adding: int) -> bool:
        return self.budget.fits(self.residents(), adding)

    async def _make_room(self, slot: ModelSlot, adding: int) -> None:
        """Unload what the budget chooses until ``slot`` (``adding`` bytes) fits; models already on their way
        out are waited for."""
        while not self.budget.fits(self.residents(slot), adding):
            room = self.budget.room_for(adding, self.residents(slot))
            if not room.fits:
                raise ModelTooLarge(
                    f"{slot.name} has {adding} bytes of weights, more than the model budget allows on its "
                    f"own ({self.budget.describe()})"
                )
            if room.unload:
                logger.info("unloading %s to make room for %s", ", ".join(room.unload), slot.name)
                await asyncio.gather(*(self.unload(name, evicted=True) for name in room.unload))
            else:
                await self._change.wait()

    async def load_finished(self, name: str) -> None:
        """Return once the load of ``name`` under way (if any) has ended, loaded or failed."""
        task = self._loads.get(name)
        if task is not None:
            await asyncio.shield(task)

    async def unload(self, name: str, *, evicted: bool = False) -> ModelSlot:
        """Stop taking requests for the model, wait for those in flight, free it. Idempotent."""
        slot = self.get(name)
        engine = slot.engine
        if engine is None or slot.state in (ModelState.UNAVAILABLE, ModelState.UNLOADING):
            if slot.state is ModelState.FAILED:
                slot.set_unavailable()
            return slot
        slot.set_unloading()
        await engine.drained()
        await engine.aclose()
        del engine
        slot.set_unavailable()
        # The batcher's cancelled tasks finish on the loop's next turns; then nothing holds the model, and
        # what it freed can go back to the OS (core/memory.py).
        for _ in range(3):
            await asyncio.sleep(0)
        await asyncio.to_thread(release_memory)
        for observer in self._observers:
            observer.on_unload(slot.name, evicted)
            observer.on_resident(slot.name, len(self.loaded()), 0)
        return slot

    async def wait_loaded(
        self, slot: ModelSlot, timeout: float, *, loading_message: str | None = None
    ) -> Engine:
        """The engine, loading the model if it is not and waiting up to ``timeout`` seconds for it, also
        while it is being unloaded to make room (it loads again once it is gone)."""
        started = time.monotonic()
        waited = False
        try:
            while slot.engine is None or slot.state not in (ModelState.READY, ModelState.STOPPING):
                self.start_load(slot)
                self._raise_if_failed(slot)
                remaining = started + timeout - time.monotonic()
                # Loading, or on its way out and loading again once it is gone (start_load, next turn).
                coming = slot.state in (ModelState.LOADING, ModelState.UNLOADING)
                if not coming or remaining <= 0:
                    return slot.engine_or_raise(loading_message=loading_message)
                waited = True
                await slot.changed(remaining)
            return slot.engine
        finally:
            if waited:
                for observer in self._observers:
                    observer.on_wait(slot.name, time.monotonic() - started)

    def defer(self, slot: ModelSlot) -> None:
        """Not a model of the start-up load after all (over the budget): it loads on request."""
        self.start_names.remove(slot.name)
        self._starting.discard(slot.name)
        slot.set_unavailable()

    def loading_at_start(self, slot: ModelSlot) -> bool:
        """Whether ``slot``'s load is the server's start-up load, still under way."""
        return slot.name in self._starting

    def engine_or_raise(self, slot: ModelSlot, *, start: bool, loading_message: str | None = None) -> Engine:
        """The engine now, or a 503 with the estimate (starting the load when ``start``); a failed load
        answers with its own status until the back-off lets a request try again."""
        if start:
            self.start_load(slot)
        self._raise_if_failed(slot)
        return slot.engine_or_raise(loading_message=loading_message)

    def _raise_if_failed(self, slot: ModelSlot) -> None:
        if slot.state is ModelState.FAILED and slot.error_status != 503 and self._loader is not None:
            error = MaskserveError(f"Model {slot.name} failed to load: {slot.error}")
            error.status = slot.error_status
            raise error

    def states(self) -> list[tuple[str, str, str | None]]:
        """Every model with its state and, when it failed, why."""
        return [(slot.name, slot.state.value, slot.error) for slot in self._slots.values()]

    async def aclose(self) -> None:
        self.set_stopping()
        for task in list(self._loads.values()):
            task.cancel()
        for slot in self._slots.values():
            if slot.engine is not None:
                await slot.engine.aclose()


def as_registry(target: Engine | ModelSlot | ModelRegistry) -> ModelRegistry:
    """A loaded engine or one model's slot becomes a registry of that one model."""
    if isinstance(target, ModelRegistry):
        return target
    return ModelRegistry.single(target if isinstance(target, ModelSlot) else ModelSlot.ready_with(target))
