from __future__ import annotations

from maskserve.core.cache import ResponseCache, approximate_size
from maskserve.core.context import RequestContext
from maskserve.domain import Prediction


def test_lru_evicts_the_least_recently_used_entry() -> None:
    cache = ResponseCache(max_entries=2, max_bytes=10**6)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # "a" is now the most recent
    cache.put("c", "3")
    assert cache.get("b") is None
    assert cache.get("a") == "1"
    assert cache.get("c") == "3"
    assert (cache.hits, cache.misses) == (3, 1)


def test_byte_bound_evicts_and_oversized_values_are_not_stored() -> None:
    small = "x" * 100
    limit = approximate_size(small) * 3
    cache = ResponseCache(max_entries=100, max_bytes=limit)
    for key in range(5):
        cache.put(key, small)
    assert len(cache) == 3
    assert cache.bytes <= limit
    assert cache.get(0) is None
    assert cache.get(4) == small
    cache.put("huge", "y" * (limit * 2))
    assert cache.get("huge") is None
    assert len(cache) == 3


def test_replacing_a_key_keeps_the_byte_count_right() -> None:
    cache = ResponseCache(max_entries=10, max_bytes=10**6)
    cache.put("k", "a" * 10)
    cache.put("k", "b" * 1000)
    assert cache.bytes == approximate_size("b" * 1000)
    cache.clear()
    assert (len(cache), cache.bytes) == (0, 0)


def test_disabled_cache_stores_nothing() -> None:
    cache = ResponseCache(max_entries=0, max_bytes=10**6)
    assert not cache.enabled
    cache.put("k", "v")
    assert cache.get("k") is None


def test_size_walks_nested_predictions() -> None:
    one = [[Prediction(score=0.5, token=1, token_str="a", sequence="a b")]]
    many = [[Prediction(score=0.5, token=i, token_str="a" * 50, sequence="a b" * 50) for i in range(10)]]
    assert approximate_size(many) > 5 * approximate_size(one)


def test_outcome_labels() -> None:
    assert RequestContext().label == "bypass"
    assert RequestContext(hits=2).label == "hit"
    assert RequestContext(hits=2, misses=1).label == "miss"
