"""The budget alone: which models to unload for one more: idle ones before busy ones, least recently used
first; a model already leaving still counts until it is gone; a model too large for the whole budget."""

from __future__ import annotations

from maskserve.core.budget import Budget, Resident, Room


def _r(
    name: str, size: int = 100, *, busy: bool = False, used: float = 0.0, leaving: bool = False
) -> Resident:
    return Resident(name, size, busy, used, leaving)


def test_no_bound_always_fits() -> None:
    assert Budget().room_for(10**12, [_r("a"), _r("b")]) == Room((), True)


def test_max_models_unloads_the_least_recently_used_idle_model() -> None:
    loaded = [_r("a", used=3.0), _r("b", used=1.0), _r("c", used=2.0)]
    assert Budget(max_models=3).room_for(1, loaded) == Room(("b",), True)
    assert Budget(max_models=2).room_for(1, loaded) == Room(("b", "c"), True)


def test_idle_models_go_before_busy_ones_and_busy_ones_go_when_needed() -> None:
    loaded = [_r("a", used=1.0, busy=True), _r("b", used=2.0)]
    assert Budget(max_models=2).room_for(1, loaded) == Room(("b",), True)
    assert Budget(max_models=1).room_for(1, loaded) == Room(("b", "a"), True)
    assert Budget(max_models=1).room_for(1, [_r("a", busy=True)]) == Room(("a",), True)


def test_a_model_already_leaving_counts_until_it_is_gone() -> None:
    loaded = [_r("a", leaving=True), _r("b", used=5.0)]
    budget = Budget(max_models=2)
    assert not budget.fits(loaded, 1)
    # Once a is gone there is room: nothing more to unload, only to wait for it.
    assert budget.room_for(1, loaded) == Room((), True)
    assert Budget(max_models=1).room_for(1, loaded) == Room(("b",), True)


def test_a_model_larger_than_the_budget_never_fits() -> None:
    assert Budget(max_bytes=100).room_for(101, [_r("a", 10)]) == Room(("a",), False)
    assert Budget(max_bytes=100).describe() == "--memory_budget 100 bytes"
    assert Budget(max_models=2, max_bytes=100).describe() == "--max_models 2 and --memory_budget 100 bytes"


def test_bytes_unload_only_as_much_as_needed() -> None:
    loaded = [_r("a", 400, used=1.0), _r("b", 300, used=2.0), _r("c", 200, used=3.0)]
    budget = Budget(max_bytes=1000)
    assert budget.room_for(100, loaded) == Room((), True)
    assert budget.room_for(200, loaded) == Room(("a",), True)
    assert budget.room_for(700, loaded) == Room(("a", "b"), True)
    assert budget.room_for(2000, loaded) == Room(("a", "b", "c"), False)


def test_fits_counts_models_and_bytes() -> None:
    assert Budget(max_models=2).fits([_r("a")], 0)
    assert not Budget(max_models=1).fits([_r("a")], 0)
    assert Budget(max_bytes=300).fits([_r("a", 200)], 100)
    assert not Budget(max_bytes=300).fits([_r("a", 200)], 101)
