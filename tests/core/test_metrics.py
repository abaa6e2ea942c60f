from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from maskserve.core.metrics import BATCH_SIZE_BUCKETS, MODEL_STATES, Metrics

M = "bert"


def samples(metrics: Metrics) -> list[Sample]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return [s for family in text_string_to_metric_families(body.decode()) for s in family.samples]


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = [s.value for s in samples(metrics) if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_kserve_stage_histograms_keep_kserve_names_and_label() -> None:
    metrics = Metrics("bert")
    metrics.observe_stage("preprocess", 0.002)
    metrics.observe_stage("predict", 0.04)
    metrics.observe_stage("predict", 0.06)
    metrics.observe_stage("postprocess", 0.001)
    assert value(metrics, "request_preprocess_seconds_count", model_name="bert") == 1
    assert value(metrics, "request_predict_seconds_count", model_name="bert") == 2
    assert value(metrics, "request_predict_seconds_sum", model_name="bert") == pytest.approx(0.1)
    assert value(metrics, "request_postprocess_seconds_count", model_name="bert") == 1
    # Millisecond resolution at the low end: 2 ms falls in the 2.5 ms bucket, not the 5 ms one only.
    assert value(metrics, "request_preprocess_seconds_bucket", model_name="bert", le="0.0025") == 1
    assert value(metrics, "request_preprocess_seconds_bucket", model_name="bert", le="0.001") == 0


def test_stage_series_exist_before_the_first_request() -> None:
    metrics = Metrics("bert")
    assert value(metrics, "request_predict_seconds_count", model_name="bert") == 0


def test_requests_are_counted_by_protocol_route_and_status() -> None:
    metrics = Metrics("bert")
    route = "/v2/models/{name}/infer"
    metrics.observe_request("v2", route, 200, 0.01)
    metrics.observe_request("v2", route, 200, 0.02)
    metrics.observe_request("v2", route, 400, 0.001)
    assert value(metrics, "maskserve_requests_total", protocol="v2", route=route, status="200") == 2
    assert value(metrics, "maskserve_requests_total", protocol="v2", route=route, status="400") == 1
    assert value(metrics, "maskserve_request_duration_seconds_count", protocol="v2", route=route) == 3


def test_batches_and_queue_waits() -> None:
    metrics = Metrics("bert")
    metrics.observe_batch(size=3, padded_tokens=3 * 20, queue_waits_s=[0.001, 0.002, 0.003])
    metrics.observe_batch(size=1, padded_tokens=12, queue_waits_s=[0.0])
    assert value(metrics, "maskserve_batch_size_count", model_name=M) == 2
    assert value(metrics, "maskserve_batch_size_sum", model_name=M) == 4
    assert value(metrics, "maskserve_batch_size_bucket", model_name=M, le="2.0") == 1
    assert value(metrics, "maskserve_batch_size_bucket", model_name=M, le="4.0") == 2
    assert value(metrics, "maskserve_batch_padded_tokens_sum", model_name=M) == 72
    assert value(metrics, "maskserve_queue_wait_seconds_count", model_name=M) == 4
    buckets = sorted(
        float(s.labels["le"]) for s in samples(metrics) if s.name == "maskserve_batch_size_bucket"
    )
    assert buckets == [*map(float, BATCH_SIZE_BUCKETS), float("inf")]


def test_cache_counters() -> None:
    metrics = Metrics("bert")
    metrics.observe_cache(hits=3, misses=1)
    metrics.observe_cache(hits=0, misses=2)
    assert value(metrics, "maskserve_cache_hits_total", model_name=M) == 3
    assert value(metrics, "maskserve_cache_misses_total", model_name=M) == 3


def test_model_state_is_one_hot_and_always_lists_every_state() -> None:
    metrics = Metrics("bert")
    assert {
        state: value(metrics, "maskserve_model_state", model_name=M, state=state) for state in MODEL_STATES
    } == {
        "unavailable": 0,
        "loading": 0,
        "ready": 0,
        "failed": 0,
        "stopping": 0,
        "unloading": 0,
    }
    metrics.set_model_state("loading")
    metrics.set_model_state("ready")
    states = {
        state: value(metrics, "maskserve_model_state", model_name=M, state=state) for state in MODEL_STATES
    }
    assert states == {
        "unavailable": 0,
        "loading": 0,
        "ready": 1,
        "failed": 0,
        "stopping": 0,
        "unloading": 0,
    }


def test_unknown_model_state_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model state"):
        Metrics("bert").set_model_state("dancing")  # type: ignore[arg-type]


def test_gauges() -> None:
    metrics = Metrics("bert")
    metrics.set_queue_depth(7)
    metrics.request_started()
    metrics.request_started()
    metrics.request_finished()
    assert value(metrics, "maskserve_queue_inputs", model_name=M) == 7
    assert value(metrics, "maskserve_inflight_requests") == 1


def test_each_instance_has_its_own_registry() -> None:
    # A second Metrics in the same process must not clash with the first (the global registry would).
    first, second = Metrics("a"), Metrics("b")
    first.observe_cache(1, 0)
    second.observe_cache(0, 1)
    assert value(first, "maskserve_cache_hits_total", model_name="a") == 1
    assert value(second, "maskserve_cache_hits_total", model_name="b") == 0
    assert first.registry is not second.registry
    assert (
        prometheus_client.REGISTRY.get_sample_value("maskserve_cache_hits_total", {"model_name": "a"}) is None
    )


def test_a_given_registry_is_used() -> None:
    registry = CollectorRegistry()
    metrics = Metrics("bert", registry=registry)
    metrics.set_queue_depth(2)
    assert registry.get_sample_value("maskserve_queue_inputs", {"model_name": M}) == 2


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    metrics = Metrics("bert")
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    body, content_type = metrics.render(None)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# EOF" not in body


def test_models_share_one_registry_under_their_own_label() -> None:
    metrics = Metrics("bert")
    roberta = metrics.for_model("roberta")
    roberta.observe_batch(size=2, padded_tokens=20, queue_waits_s=[0.0, 0.0])
    roberta.set_model_state("ready")
    roberta.observe_load(3.0, ok=True)
    roberta.set_loaded(2, 1000)
    metrics.observe_load(1.0, ok=False)
    assert roberta.registry is metrics.registry
    assert value(metrics, "maskserve_batch_size_count", model_name="roberta") == 1
    assert value(metrics, "maskserve_model_state", model_name="roberta", state="ready") == 1
    assert value(metrics, "maskserve_model_state", model_name="bert", state="ready") == 0
    assert value(metrics, "maskserve_model_loads_total", model_name="roberta", outcome="loaded") == 1
    assert value(metrics, "maskserve_model_loads_total", model_name="bert", outcome="failed") == 1
    assert value(metrics, "maskserve_model_load_seconds_sum", model_name="roberta") == 3.0
    assert value(metrics, "maskserve_models_loaded") == 2
    assert value(metrics, "maskserve_model_weight_bytes", model_name="roberta") == 1000
