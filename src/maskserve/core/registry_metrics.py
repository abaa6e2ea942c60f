"""The registry's events as Prometheus series: each model's state, its loads and unloads, what is loaded."""

from __future__ import annotations

from maskserve.core.metrics import Metrics
from maskserve.core.slot import ModelState


class MetricsObserver:
    """An observer of :class:`maskserve.core.registry.ModelRegistry` that records into ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_state(self, name: str, state: ModelState) -> None:
        self.metrics.for_model(name).set_model_state(state.value)

    def on_load(self, name: str, seconds: float, ok: bool) -> None:
        self.metrics.for_model(name).observe_load(seconds, ok=ok)

    def on_unload(self, name: str, evicted: bool) -> None:
        self.metrics.for_model(name).observe_unload(evicted)

    def on_wait(self, name: str, seconds: float) -> None:
        self.metrics.for_model(name).observe_load_wait(seconds)

    def on_resident(self, name: str, loaded: int, weight_bytes: int) -> None:
        self.metrics.for_model(name).set_loaded(loaded, weight_bytes)
