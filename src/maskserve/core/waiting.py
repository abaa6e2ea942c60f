"""How a request waits for its model, one policy per protocol (the data plane applies it).

KServe's V1 and V2 (REST and gRPC) wait for a model that is not loaded, up to --max_wait_for_model_s,
except while the server's own start-up load runs, when they answer 503 at once as KServe's server does (it
is not ready yet either). The HF Inference API answers 503 with ``estimated_time`` while a model loads,
unless the client asked to wait (``x-wait-for-model``), and may load an allowed Hub id on request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from maskserve.core.slot import ModelSlot, ModelState

if TYPE_CHECKING:
    from maskserve.core.engine import Engine
    from maskserve.core.registry import ModelRegistry


class WaitPolicy(Protocol):
    @property
    def allow_hub(self) -> bool:
        """Whether an allowed Hub id that is not known yet gets a slot (and loads) on this request."""
        ...

    async def engine(self, registry: ModelRegistry, slot: ModelSlot, name: str | None) -> Engine:
        """The engine of ``slot`` (asked for as ``name``), waiting as the protocol does, or a 503/4xx."""
        ...


@dataclass(frozen=True)
class KServeWait:
    """V1, V2 REST and gRPC."""

    max_wait_s: float
    allow_hub: bool = False

    async def engine(self, registry: ModelRegistry, slot: ModelSlot, name: str | None) -> Engine:
        if slot.state is ModelState.LOADING and registry.loading_at_start(slot):
            return registry.engine_or_raise(slot, start=False)
        if slot.engine is not None and slot.state in (ModelState.READY, ModelState.STOPPING):
            return slot.engine_or_raise()
        return await registry.wait_loaded(slot, self.max_wait_s)


@dataclass(frozen=True)
class HFWait:
    """The Inference API: ``wait`` is the client's ``x-wait-for-model`` (or ``options.wait_for_model``)."""

    wait: bool
    max_wait_s: float
    allow_hub: bool = True

    async def engine(self, registry: ModelRegistry, slot: ModelSlot, name: str | None) -> Engine:
        message = f"Model {name or slot.model_id or slot.name} is currently loading"
        if self.wait:
            return await registry.wait_loaded(slot, self.max_wait_s, loading_message=message)
        return registry.engine_or_raise(slot, start=True, loading_message=message)
