"""The models a server is asked to serve, from its settings: KServe's one model (the positional MODEL,
--model_id or --model_dir), or a repository (--model_repository's subfolders, --model NAME=URI, Hub ids
allowed by --hub_models), and their loading at start in order while the budget allows."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from maskserve.config import ModelSettings, Settings
from maskserve.core.answer_size import AnswerLimit
from maskserve.core.batcher import BatchLimits
from maskserve.core.budget import Budget
from maskserve.core.cache import ResponseCache
from maskserve.core.decoding import DecodeLimits
from maskserve.core.engine import Engine, LoadedModel, RequestPolicy
from maskserve.core.loader import estimate_load_seconds, load_model, weight_bytes
from maskserve.core.metrics import Metrics
from maskserve.core.registry import ModelRegistry
from maskserve.core.registry_metrics import MetricsObserver
from maskserve.core.slot import ModelSlot, ModelState

logger = logging.getLogger(__name__)


def settings_for(settings: Settings, slot: ModelSlot) -> ModelSettings:
    """One model's settings: the server's model flags, with this model's source and name."""
    return settings.model_settings(slot.source, slot.name)


def request_policy(settings: Settings) -> RequestPolicy:
    """The server's limits on one request, the same for every model it serves."""
    return RequestPolicy(
        max_inputs=settings.max_inputs,
        max_masks=settings.max_masks,
        max_score_tokens=settings.max_score_tokens,
        timeout_s=settings.request_timeout_s or None,
        answer_limit=AnswerLimit(settings.max_response_bytes, "--max_response_bytes"),
        decode=DecodeLimits(settings.max_subwords, settings.max_beams, settings.max_decode_rows),
        output_mode=settings.output_mode,
    )


def batch_limits(settings: ModelSettings) -> BatchLimits:
    return BatchLimits(
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_delay_s=settings.max_batch_delay_ms / 1000,
        max_queue=settings.max_queue,
    )


def serving_engine(
    settings: Settings, model: LoadedModel, model_settings: ModelSettings, metrics: Metrics | None = None
) -> Engine:
    """A loaded model behind the server's policy: its limits, a response cache and the metrics."""
    return Engine(
        model,
        policy=request_policy(settings),
        limits=batch_limits(model_settings),
        cache=ResponseCache(settings.cache_size, settings.cache_max_bytes),
        # One registry for every model of the process, each model's series under its own name.
        metrics=metrics.for_model(model.info.name) if metrics is not None else None,
        workers=model_settings.model_workers,
    )


def load_engine(
    settings: Settings, metrics: Metrics | None = None, model_settings: ModelSettings | None = None
) -> Engine:
    """Load the model (``model_settings``, else the one the flags name) and serve it with the server's
    policy."""
    model_settings = model_settings or settings.model_settings()
    model = load_model(model_settings, share_cores=settings.several_models)
    return serving_engine(settings, model, model_settings, metrics)


def repository_models(folder: str) -> list[tuple[str, str]]:
    """(name, path) for each subfolder of ``folder`` that holds a config.json, by name."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--model_repository {folder} is not a directory")
    return [(d.name, str(d)) for d in sorted(root.iterdir()) if d.is_dir() and (d / "config.json").is_file()]


def build_registry(settings: Settings, metrics: Metrics) -> ModelRegistry:
    """The registry of the models the settings name, each UNAVAILABLE or, for those asked for at start,
    LOADING until ``load_at_start`` has tried them."""
    rates = LoadRates()

    def load(slot: ModelSlot) -> Engine:
        started = time.monotonic()
        engine = load_engine(settings, metrics, settings_for(settings, slot))
        rates.observe(engine.weight_bytes, time.monotonic() - started)
        return engine

    def expected(slot: ModelSlot) -> float:
        return rates.estimate(settings_for(settings, slot), slot)

    registry = ModelRegistry(
        load,
        budget=Budget(settings.max_models, settings.memory_budget_bytes()),
        hub_patterns=settings.hub_models,
        expected_load_s=expected,
        size_of=lambda slot: _local_weight_bytes(slot.source),
    )
    registry.add_observer(MetricsObserver(metrics))
    specs: list[tuple[str, str]] = []
    if not settings.several_models:
        specs.append((settings.model_name, settings.model_source()))
    else:
        if settings.model or settings.model_id:  # one model named the KServe way, beside the others
            specs.append((settings.model_name, settings.model or settings.model_id or ""))
        if settings.model_repository:
            specs += repository_models(settings.model_repository)
        specs += settings.model_specs()
    for name, source in specs:
        hub_id = source if "/" in source and not Path(source).exists() and "://" not in source else None
        slot = ModelSlot(name, hub_id, source=source, state=ModelState.LOADING)
        slot.expected_load_s = expected(slot)
        registry.add(slot, at_start=True)
    return registry


async def load_at_start(registry: ModelRegistry) -> None:
    """Load the models asked for at start, one after the other, while they fit the budget; the rest stay
    UNAVAILABLE (they load on request). A model that fails does not stop the others."""
    for name in list(registry.start_names):
        slot = registry.get(name)
        size = await asyncio.to_thread(_local_weight_bytes, slot.source)
        if not registry.fits(size):
            registry.defer(slot)
            logger.info("model %s is not loaded at start (over the budget); it loads on request", name)
            continue
        registry.start_load(slot)
        await registry.load_finished(name)


def _local_weight_bytes(source: str | None) -> int:
    """Weight bytes of a local model folder; 0 when the model is elsewhere (known once fetched)."""
    return weight_bytes(Path(source)) if source and Path(source).is_dir() else 0


class LoadRates:
    """Loading speed seen so far, for ``estimated_time``: bytes of weights per second over the loads done
    here, and the plain mean time of a load when the size to fetch is not known beforehand (a Hub id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = 0
        self._seconds = 0.0
        self._loads = 0

    def observe(self, size: int, seconds: float) -> None:
        with self._lock:
            self._bytes += size
            self._seconds += seconds
            self._loads += 1

    def estimate(self, settings: ModelSettings, slot: ModelSlot) -> float:
        source = Path(slot.source) if slot.source else None
        with self._lock:
            if self._loads == 0 or self._seconds <= 0:
                return estimate_load_seconds(settings)
            if source is not None and source.is_dir() and self._bytes > 0:
                return round(1.0 + weight_bytes(source) / (self._bytes / self._seconds), 1)
            return round(self._seconds / self._loads, 1)
