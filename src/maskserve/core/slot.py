"""One served model's life: unavailable, loading, ready, failed, unloading or stopping, and the engine once
there is one.

The servers listen before the model has loaded (so liveness answers at once and Kubernetes does not kill a
pod that is downloading weights); every route asks the slot for the engine and gets either the engine or a
ModelNotReady that says how long loading should still take. All state changes happen on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable

from maskserve.core.engine import Engine
from maskserve.errors import ModelNotReady, NotFound


class ModelState(enum.Enum):
    # Known (in the repository, or an allowed Hub id) but not loaded: loads on request.
    UNAVAILABLE = "unavailable"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"
    # Taking no new requests; unloaded once those in flight are done.
    UNLOADING = "unloading"


class ModelSlot:
    def __init__(
        self,
        name: str,
        model_id: str | None = None,
        *,
        expected_load_s: float = 30.0,
        source: str | None = None,
        state: ModelState = ModelState.LOADING,
    ) -> None:
        self.name = name
        self.model_id = model_id
        self.expected_load_s = expected_load_s
        # Where the model comes from (a folder, a Hub id, any URI that `maskserve download` takes).
        self.source = source
        self.state = state
        self.engine: Engine | None = None
        self.error: str | None = None
        # The status a failed load answers with (404 not found, 422 not a fill-mask model, 502 Hub down),
        # and when it failed: a later request may try again once the back-off has passed.
        self.error_status = 503
        self.failed_at: float | None = None
        self._started = time.monotonic()
        self._changed: asyncio.Event | None = None
        self._listeners: list[Callable[[ModelState], None]] = []

    @classmethod
    def ready_with(cls, engine: Engine) -> ModelSlot:
        slot = cls(engine.info.name, engine.info.model_id)
        slot.set_ready(engine)
        return slot

    def add_listener(self, listener: Callable[[ModelState], None]) -> None:
        """Call ``listener`` with the current state now and with every later one (on the event loop)."""
        self._listeners.append(listener)
        listener(self.state)

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY

    def _set(self, state: ModelState) -> None:
        self.state = state
        if self._changed is not None:
            self._changed.set()
        for listener in self._listeners:
            listener(state)

    def set_ready(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.info.name
        self._set(ModelState.READY)

    def set_failed(self, reason: str, status: int = 503) -> None:
        self.error = reason
        self.error_status = status
        self.failed_at = time.monotonic()
        self._set(ModelState.FAILED)

    def set_loading(self, expected_load_s: float | None = None) -> None:
        if expected_load_s is not None:
            self.expected_load_s = expected_load_s
        self._started = time.monotonic()
        self.error = None
        self._set(ModelState.LOADING)

    def set_unloading(self) -> None:
        self._set(ModelState.UNLOADING)

    def set_unavailable(self) -> None:
        self.engine = None
        self._set(ModelState.UNAVAILABLE)

    def set_stopping(self) -> None:
        """Not ready any more (probes turn away new traffic) while in-flight requests still finish."""
        if self.state is ModelState.READY:
            self._set(ModelState.STOPPING)

    def answers_to(self, name: str) -> bool:
        if self.engine is not None:
            return self.engine.info.answers_to(name)
        return name in (self.name, self.model_id)

    def check_name(self, name: str) -> None:
        if not self.answers_to(name):
            raise NotFound(f"Model with name {name} does not exist.")

    def estimated_time(self) -> float:
        """Seconds of loading still expected (never below one, since the model is not there yet)."""
        return round(max(1.0, self.expected_load_s - (time.monotonic() - self._started)), 1)

    def not_ready(self, *, loading_message: str | None = None) -> ModelNotReady:
        """The 503 for the current state. ``loading_message`` replaces KServe's wording while loading."""
        if self.state is ModelState.LOADING:
            wait = self.estimated_time()
            message = loading_message or f"Model with name {self.name} is not ready."
            return ModelNotReady(message, estimated_time=wait, retry_after=max(1, round(wait)))
        if self.state is ModelState.FAILED:
            return ModelNotReady(f"Model {self.name} failed to load: {self.error}")
        if self.state is ModelState.UNAVAILABLE:
            return ModelNotReady(
                f"Model {self.name} is not loaded; it loads on request (or through the repository API)",
                estimated_time=self.expected_load_s,
                retry_after=max(1, round(self.expected_load_s)),
            )
        if self.state is ModelState.UNLOADING:
            return ModelNotReady(
                f"Model {self.name} is being unloaded to make room; it loads again on request",
                estimated_time=self.expected_load_s,
                retry_after=max(1, round(self.expected_load_s)),
            )
        return ModelNotReady(f"Model with name {self.name} is not ready: the server is shutting down.")

    def require_ready(self) -> None:
        """For readiness probes: only READY is ready; a draining server must stop receiving traffic."""
        if self.state is not ModelState.READY:
            raise self.not_ready()

    def engine_or_raise(self, *, loading_message: str | None = None) -> Engine:
        if self.state is ModelState.READY and self.engine is not None:
            return self.engine
        # Requests already admitted while stopping still finish; new ones during shutdown are still
        # served by the engine as long as it exists, since the listener closes first.
        if self.state is ModelState.STOPPING and self.engine is not None:
            return self.engine
        raise self.not_ready(loading_message=loading_message)

    async def changed(self, timeout: float) -> None:
        """Return at the next change of state, or after ``timeout`` seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=timeout)

    async def wait_engine(self, timeout: float, *, loading_message: str | None = None) -> Engine:
        """The engine, waiting up to ``timeout`` seconds for loading to finish (x-wait-for-model)."""
        deadline = time.monotonic() + timeout
        while self.state is ModelState.LOADING and (remaining := deadline - time.monotonic()) > 0:
            await self.changed(remaining)
        return self.engine_or_raise(loading_message=loading_message)
