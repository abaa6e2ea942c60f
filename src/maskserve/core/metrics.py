"""Prometheus metrics for one served model, on a registry of its own.

Each ``Metrics`` owns its ``CollectorRegistry`` rather than using prometheus_client's global one: several
apps (and engines) can live in one process, as they do in the tests, and a global registry would refuse
the second set of metric names. Nothing is registered at import time.

KServe's model server exposes ``request_preprocess_seconds``, ``request_predict_seconds`` and
``request_postprocess_seconds`` with the label ``model_name``; dashboards built for KServe read them, so
they keep those names. Everything else is prefixed ``maskserve_``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Final, Literal, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

Stage = Literal["preprocess", "predict", "postprocess"]
ModelState = Literal["unavailable", "loading", "ready", "failed", "stopping", "unloading"]
MODEL_STATES: Final[tuple[ModelState, ...]] = get_args(ModelState)

# Tokenising a few texts takes well under a millisecond; a large batch on a CPU can take seconds.
LOAD_BUCKETS: Final = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_SIZE_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128)
PADDED_TOKEN_BUCKETS: Final = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class Metrics:
    """The server's metrics. Methods are cheap and thread-safe (prometheus_client locks per sample).

    Label cardinality stays bounded: ``route`` must be a route template such as
    ``/v2/models/{name}/infer``, never a raw request path (model names and ids in paths would otherwise
    create one time series per distinct URL); ``protocol`` comes from a small fixed set.
    """

    def __init__(self, model_name: str, registry: CollectorRegistry | None = None) -> None:
        """``model_name`` labels the per-model series this object records; ``for_model`` gives the same
        collectors under another model's name (one registry, one /metrics, for every served model)."""
        if registry is None:
            registry = CollectorRegistry(auto_describe=True)
            # The global registry carries these by default; a private one has to ask for them.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self.model_name = model_name

        def stage(name: str, doc: str) -> Histogram:
            return Histogram(name, doc, ["model_name"], buckets=LATENCY_BUCKETS, registry=registry)

        self._stages: dict[str, Histogram] = {
            "preprocess": stage("request_preprocess_seconds", "pre-process request latency"),
            "predict": stage("request_predict_seconds", "predict request latency"),
            "postprocess": stage("request_postprocess_seconds", "post-process request latency"),
        }
        self._requests = Counter(
            "maskserve_requests_total",
            "HTTP requests answered, by protocol, route template and status",
            ["protocol", "route", "status"],
            registry=registry,
        )
        self._request_seconds = Histogram(
            "maskserve_request_duration_seconds",
            "HTTP request latency, from the first byte received to the last byte sent",
            ["protocol", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        model = ["model_name"]
        self._queue_wait = Histogram(
            "maskserve_queue_wait_seconds",
            "time an input waited in the batching queue before its batch ran",
            model,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._batch_size = Histogram(
            "maskserve_batch_size",
            "inputs per model batch",
            model,
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self._padded_tokens = Histogram(
            "maskserve_batch_padded_tokens",
            "token positions in a padded model batch (rows times the longest row)",
            model,
            buckets=PADDED_TOKEN_BUCKETS,
            registry=registry,
        )
        self._cache_hits = Counter(
            "maskserve_cache_hits_total", "inputs answered from the result cache", model, registry=registry
        )
        self._cache_misses = Counter(
            "maskserve_cache_misses_total",
            "inputs the result cache could not answer",
            model,
            registry=registry,
        )
        self._model_state = Gauge(
            "maskserve_model_state",
            "1 for the model's current state, 0 for the others",
            ["model_name", "state"],
            registry=registry,
        )
        self._queue_inputs = Gauge(
            "maskserve_queue_inputs", "inputs waiting in the batching queue", model, registry=registry
        )
        self._inflight = Gauge(
            "maskserve_inflight_requests", "HTTP requests being handled", registry=registry
        )
        self._loads = Counter(
            "maskserve_model_loads_total",
            "model loads, by outcome (loaded, failed)",
            ["model_name", "outcome"],
            registry=registry,
        )
        self._load_seconds = Histogram(
            "maskserve_model_load_seconds",
            "time to fetch and load a model",
            model,
            buckets=LOAD_BUCKETS,
            registry=registry,
        )
        self._unloads = Counter(
            "maskserve_model_unloads_total",
            "models unloaded (by request or to make room)",
            model,
            registry=registry,
        )
        # When traffic needs more models than the budget holds, models are evicted and loaded again in turn
        # (docs/repository.md, "Thrashing"); these two say how often, and what requests paid for it.
        self._evictions = Counter(
            "maskserve_model_evictions_total",
            "models unloaded to make room for another model",
            model,
            registry=registry,
        )
        self._load_waits = Histogram(
            "maskserve_model_load_wait_seconds",
            "time requests waited for their model to load (on request, or again after an eviction)",
            model,
            buckets=LOAD_BUCKETS,
            registry=registry,
        )
        self._loaded = Gauge("maskserve_models_loaded", "models loaded and serving", registry=registry)
        self._weight_bytes = Gauge(
            "maskserve_model_weight_bytes",
            "bytes of a loaded model's weights (0 when not loaded)",
            model,
            registry=registry,
        )
        self._models: set[str] = set()
        self._init_series(model_name)

    def _init_series(self, model_name: str) -> None:
        # Series exist from the start, so that rate() and absent() queries see zeros rather than nothing;
        # once per model (views share the set), so that a later view does not reset the model's state.
        if model_name in self._models:
            return
        self._models.add(model_name)
        for histogram in self._stages.values():
            histogram.labels(model_name=model_name)
        # No state is 1 until one is set: the owner knows whether the model is loading or already loaded.
        for state in MODEL_STATES:
            self._model_state.labels(model_name=model_name, state=state).set(0)

    def for_model(self, model_name: str) -> Metrics:
        """The same collectors, recording under ``model_name``."""
        view = copy.copy(self)
        view.model_name = model_name
        view._init_series(model_name)
        return view

    def observe_load(self, seconds: float, ok: bool) -> None:
        self._loads.labels(model_name=self.model_name, outcome="loaded" if ok else "failed").inc()
        if ok:
            self._load_seconds.labels(model_name=self.model_name).observe(seconds)

    def observe_unload(self, evicted: bool = False) -> None:
        self._unloads.labels(model_name=self.model_name).inc()
        if evicted:
            self._evictions.labels(model_name=self.model_name).inc()

    def observe_load_wait(self, seconds: float) -> None:
        self._load_waits.labels(model_name=self.model_name).observe(seconds)

    def set_loaded(self, models: int, weight_bytes: int) -> None:
        """How many models serve now, and this model's weight bytes (0 once it is unloaded)."""
        self._loaded.set(models)
        self._weight_bytes.labels(model_name=self.model_name).set(weight_bytes)

    def observe_stage(self, stage: Stage, seconds: float) -> None:
        """Latency of one stage of a request, in KServe's histograms."""
        self._stages[stage].labels(model_name=self.model_name).observe(seconds)

    def observe_request(self, protocol: str, route: str, status: int, seconds: float) -> None:
        """One answered HTTP request. ``route`` is the route template, never the raw path."""
        self._requests.labels(protocol=protocol, route=route, status=str(status)).inc()
        self._request_seconds.labels(protocol=protocol, route=route).observe(seconds)

    def observe_batch(self, size: int, padded_tokens: int, queue_waits_s: Sequence[float]) -> None:
        """One model batch: its inputs, its padded size in tokens, and how long each input queued."""
        model = self.model_name
        self._batch_size.labels(model_name=model).observe(size)
        self._padded_tokens.labels(model_name=model).observe(padded_tokens)
        queue_wait = self._queue_wait.labels(model_name=model)
        for wait in queue_waits_s:
            queue_wait.observe(wait)

    def observe_cache(self, hits: int, misses: int) -> None:
        self._cache_hits.labels(model_name=self.model_name).inc(hits)
        self._cache_misses.labels(model_name=self.model_name).inc(misses)

    def set_model_state(self, state: ModelState) -> None:
        if state not in MODEL_STATES:
            raise ValueError(f"unknown model state {state!r}; expected one of {', '.join(MODEL_STATES)}")
        for each in MODEL_STATES:
            self._model_state.labels(model_name=self.model_name, state=each).set(1 if each == state else 0)

    def set_queue_depth(self, inputs: int) -> None:
        self._queue_inputs.labels(model_name=self.model_name).set(inputs)

    def request_started(self) -> None:
        self._inflight.inc()

    def request_finished(self) -> None:
        self._inflight.dec()

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type: OpenMetrics when ``accept`` asks for it (as
        Prometheus does when scraping with it enabled), else the classic text format 0.0.4."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


__all__ = [
    "BATCH_SIZE_BUCKETS",
    "LATENCY_BUCKETS",
    "MODEL_STATES",
    "PADDED_TOKEN_BUCKETS",
    "Metrics",
    "ModelState",
    "Stage",
]
