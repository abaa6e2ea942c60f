"""How many models, and how many weight bytes, may be loaded at once, and which to unload to make room.

Pure functions over a snapshot of the loaded models, so the choice is tested without a server. The budget
is never passed: idle models go first, least recently used first; when that is not enough, busy ones follow
(they stop taking new requests and finish those in flight before they go). A model already on its way out
still counts until it is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Resident:
    """A loaded model, as the budget sees it."""

    name: str
    weight_bytes: int
    # Requests in flight: such a model goes only when unloading the idle ones is not enough.
    busy: bool
    last_used: float
    # Being unloaded already: it cannot be chosen, and its memory is freed once it is gone.
    leaving: bool = False


@dataclass(frozen=True)
class Room:
    """What making room for one more model takes: the models to unload (idle before busy, least recently
    used first) and whether the new one fits once they, and the models already leaving, are gone (False:
    it does not fit even alone)."""

    unload: tuple[str, ...]
    fits: bool


@dataclass(frozen=True)
class Budget:
    """At most this many loaded models and this many weight bytes; None: no bound."""

    max_models: int | None = None
    max_bytes: int | None = None

    def fits(self, loaded: Sequence[Resident], adding: int) -> bool:
        """Whether one more model of ``adding`` bytes fits beside ``loaded``."""
        if self.max_models is not None and len(loaded) + 1 > self.max_models:
            return False
        return self.max_bytes is None or sum(r.weight_bytes for r in loaded) + adding <= self.max_bytes

    def room_for(self, adding: int, loaded: Sequence[Resident]) -> Room:
        """The models to unload so that one more of ``adding`` bytes fits."""
        if self.fits(loaded, adding):
            return Room((), True)
        staying = [r for r in loaded if not r.leaving]
        chosen: list[str] = []
        for resident in sorted(staying, key=lambda r: (r.busy, r.last_used)):
            if self.fits(staying, adding):
                break
            staying.remove(resident)
            chosen.append(resident.name)
        return Room(tuple(chosen), self.fits(staying, adding))

    def describe(self) -> str:
        """The bounds, as the flags that set them."""
        parts = [f"--max_models {self.max_models}"] if self.max_models is not None else []
        if self.max_bytes is not None:
            parts.append(f"--memory_budget {self.max_bytes} bytes")
        return " and ".join(parts) or "no bound"
