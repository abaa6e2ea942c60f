"""The models one process serves, by name: the model repository.

Every model has a slot (its state and, once loaded, its engine). Models named at start load in order while
they fit the budget; the others are UNAVAILABLE and load on their first request or through the repository
API; Hub ids that an operator allowed (``--hub_models``) get a slot on their first request. Loading runs on
a thread (downloads and weights must not block the event loop); every state change happens on the loop.

The budget (``--max_models``, ``--memory_budget``) is kept by unloading the least recently used idle model
before a load that would pass it; a model with requests in flight is never unloaded for room. Each model has
its own batcher and model threads, so a flood on one model queues behind that model only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from maskserve.core.engine import Engine
from maskserve.core.slot import ModelSlot, ModelState
from maskserve.errors import MaskserveError, ModelLoadError, ModelNotReady, NotFound

if TYPE_CHECKING:
    from maskserve.core.metrics import Metrics

logger = logging.getLogger(__name__)

# Loads the model of a slot into an engine; blocking (runs on a thread).
Loader = Callable[[ModelSlot], Engine]
# Names shown in a 404: enough to spot a typo, never a page of them.
_NAMES_SHOWN = 10


@dataclass(frozen=True)
class Budget:
    """At most this many loaded models and this many weight bytes; None: no bound."""

    max_models: int | None = None
    max_bytes: int | None = None


class ModelRegistry:
    def __init__(
        self,
        loader: Loader | None = None,
        *,
        budget: Budget | None = None,
        hub_patterns: Sequence[str] = (),
        metrics: Metrics | None = None,
        retry_after_failure_s: float = 30.0,
        expected_load_s: Callable[[ModelSlot], float] | None = None,
        size_of: Callable[[ModelSlot], int] | None = None,
    ) -> None:
        self._loader = loader
        self.budget = budget or Budget()
        self.hub_patterns = tuple(p for p in hub_patterns if p)
        self.metrics = metrics
        self.retry_after_failure_s = retry_after_failure_s
        self._expected_load_s = expected_load_s or (lambda slot: slot.expected_load_s)
        # A model's weight bytes before it loads (a local folder's files; 0 when it must be fetched first).
        self._size_of = size_of or (lambda slot: 0)
        self._slots: dict[str, ModelSlot] = {}
        self._loads: dict[str, asyncio.Task[None]] = {}
        # The models asked for at start: server readiness waits for them.
        self.start_names: list[str] = []
        self._listeners: list[Callable[[bool], None]] = []
        self._stopping = False

    @classmethod
    def single(cls, slot: ModelSlot) -> ModelRegistry:
        """A registry of one model whose slot someone else fills (the single-model server, tests)."""
        registry = cls()
        registry.add(slot, at_start=True)
        return registry

    # --- what is there ---

    def add(self, slot: ModelSlot, *, at_start: bool = False) -> ModelSlot:
        if slot.name in self._slots:
            raise ValueError(f"two models are named {slot.name!r}; give each a name of its own")
        self._slots[slot.name] = slot
        if at_start:
            self.start_names.append(slot.name)

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
        if self.metrics is not None:
            self.metrics.for_model(slot.name).set_model_state(state.value)
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
        loader = self._loader
        started = time.monotonic()
        metrics = self.metrics.for_model(slot.name) if self.metrics is not None else None
        try:
            # Room first, when the size is known: the budget holds while the new model loads.
            await self._make_room(exclude=slot, adding=await asyncio.to_thread(self._size_of, slot))
            engine = await _in_daemon_thread(loader, slot)
        except MaskserveError as exc:
            # A load error names its status (404 not found, 400 not a fill-mask model, 502 the Hub); any
            # other failure of a fetch is the upstream's (502).
            status = 502 if type(exc) is ModelLoadError else exc.status
            self._failed(slot, exc.message, status, started, metrics)
            return
        except Exception as exc:
            logger.exception("loading %s failed unexpectedly", slot.name)
            self._failed(slot, f"{type(exc).__name__}: {exc}", 500, started, metrics)
            return
        finally:
            self._loads.pop(slot.name, None)
        if self._stopping:
            await engine.aclose()
            return
        await self._make_room(exclude=slot, adding=engine.weight_bytes)
        slot.set_ready(engine)
        seconds = time.monotonic() - started
        logger.info(
            "model %s loaded in %.1f s (%d MB of weights)", slot.name, seconds, engine.weight_bytes >> 20
        )
        if metrics is not None:
            metrics.observe_load(seconds, ok=True)
            metrics.set_loaded(len(self.loaded()), engine.weight_bytes)

    def _failed(
        self, slot: ModelSlot, reason: str, status: int, started: float, metrics: Metrics | None
    ) -> None:
        logger.error("model %s failed to load: %s", slot.name, reason)
        slot.set_failed(reason, status)
        if metrics is not None:
            metrics.observe_load(time.monotonic() - started, ok=False)

    def fits(self, adding: int) -> bool:
        count = len(self.loaded())
        budget = self.budget
        if budget.max_models is not None and count + 1 > budget.max_models:
            return False
        return budget.max_bytes is None or self.bytes_in_use() + adding <= budget.max_bytes

    async def _make_room(self, *, exclude: ModelSlot, adding: int) -> None:
        """Unload least recently used idle models until one more (of ``adding`` bytes) fits. Busy ones stay:
        then the budget is passed for a while, and said so, rather than a request being failed."""
        while not self.fits(adding):
            idle = [
                s
                for s in self.loaded()
                if s is not exclude
                and s.state is ModelState.READY
                and s.engine is not None
                and s.engine.active == 0
            ]
            if not idle:
                logger.warning("the model budget is passed: every other loaded model has requests in flight")
                return
            victim = min(idle, key=lambda s: s.engine.last_used if s.engine is not None else 0.0)
            logger.info("unloading %s, the least recently used idle model, to make room", victim.name)
            await self.unload(victim.name)

    async def load_finished(self, name: str) -> None:
        """Return once the load of ``name`` under way (if any) has ended, loaded or failed."""
        task = self._loads.get(name)
        if task is not None:
            await asyncio.shield(task)

    async def unload(self, name: str) -> ModelSlot:
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
        slot.set_unavailable()
        if self.metrics is not None:
            metrics = self.metrics.for_model(slot.name)
            metrics.observe_unload()
            metrics.set_loaded(len(self.loaded()), 0)
        return slot

    async def wait_loaded(
        self, slot: ModelSlot, timeout: float, *, loading_message: str | None = None
    ) -> Engine:
        """Start the load if needed and wait up to ``timeout`` seconds for the engine."""
        self.start_load(slot)
        self._raise_if_failed(slot)
        try:
            return await slot.wait_engine(timeout, loading_message=loading_message)
        except ModelNotReady:
            self._raise_if_failed(slot)  # the load it waited for failed: say why, with its status
            raise

    async def kserve_engine(self, slot: ModelSlot, max_wait_s: float) -> Engine:
        """The engine for V1 and V2 (REST and gRPC): a model that is not loaded starts loading and the request
        waits for it, up to ``max_wait_s``; a model still loading since start-up answers KServe's 503 at
        once (as KServe's server does, which is not ready yet either)."""
        if slot.state is ModelState.LOADING and slot.name in self.start_names:
            return self.engine_or_raise(slot, start=False)
        if slot.engine is not None and slot.state in (ModelState.READY, ModelState.STOPPING):
            return slot.engine_or_raise()
        return await self.wait_loaded(slot, max_wait_s)

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

    def index(self) -> list[dict[str, str]]:
        """The repository index: every model with its state (the protocol's names) and why it is not ready."""
        states = {
            ModelState.UNAVAILABLE: "UNAVAILABLE",
            ModelState.LOADING: "LOADING",
            ModelState.READY: "READY",
            ModelState.UNLOADING: "UNLOADING",
            ModelState.FAILED: "UNAVAILABLE",
            ModelState.STOPPING: "UNLOADING",
        }
        out = []
        for slot in self._slots.values():
            entry = {"name": slot.name, "version": "", "state": states[slot.state], "reason": ""}
            if slot.state is ModelState.FAILED:
                entry["reason"] = f"failed to load: {slot.error}"
            out.append(entry)
        return out

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


T = TypeVar("T")


def _in_daemon_thread(fn: Callable[[ModelSlot], T], slot: ModelSlot) -> asyncio.Future[T]:
    """``fn(slot)`` on a daemon thread of its own: a SIGTERM during a long download must not wait for it, as
    asyncio's default executor would (it joins its threads at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = fn(slot)
        except BaseException as exc:
            answer = functools.partial(settle, functools.partial(future.set_exception, exc))
        else:
            answer = functools.partial(settle, functools.partial(future.set_result, result))
        # A closed loop means the server stopped while this model loaded: nobody waits for it any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(answer)

    threading.Thread(target=run, name=f"maskserve-load-{slot.name}", daemon=True).start()
    return future
