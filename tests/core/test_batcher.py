from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from maskserve.core.batcher import Batcher, BatchLimits, _Item, cut_batch
from maskserve.domain import EncodedText, Float32Array
from maskserve.errors import BadRequest, InferenceFailed, Overloaded
from support.waiting import HANG_S, set_within, until


def text(length: int, masks: int = 1, tag: int = 0) -> EncodedText:
    ids = tuple([tag] * length)
    return EncodedText(input_ids=ids, mask_positions=tuple(range(masks)))


class FakeModel:
    """Records each batch; the logits of an item are its tag, so results can be traced back to inputs."""

    def __init__(self, gate: threading.Event | None = None, fail_on_tag: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate
        self.fail_on_tag = fail_on_tag
        self.started = threading.Event()

    def __call__(self, items: Sequence[EncodedText]) -> Float32Array:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(HANG_S)
        tags = [it.input_ids[0] for it in items]
        self.batches.append(tags)
        if self.fail_on_tag is not None and self.fail_on_tag in tags:
            raise RuntimeError("boom")
        rows = [float(it.input_ids[0]) for it in items for _ in it.mask_positions]
        return np.asarray(rows, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)


def _items(lengths: list[int]) -> list[_Item]:
    loop = asyncio.new_event_loop()
    try:
        return [_Item(text(n, tag=i), loop.create_future(), float(i)) for i, n in enumerate(lengths)]
    finally:
        loop.close()


def test_cut_starts_with_the_oldest_and_packs_similar_lengths() -> None:
    items = _items([10, 50, 11, 9, 48])
    batch = cut_batch(items, BatchLimits(max_batch_size=3, max_batch_tokens=10_000))
    assert [it.encoded.length for it in batch] == [10, 11, 9]


def test_cut_respects_the_padded_token_budget() -> None:
    items = _items([10, 50, 11, 12])
    batch = cut_batch(items, BatchLimits(max_batch_size=10, max_batch_tokens=36))
    assert [it.encoded.length for it in batch] == [10, 11, 12]
    assert max(it.encoded.length for it in batch) * len(batch) <= 36


def test_an_item_over_budget_still_runs_alone() -> None:
    batch = cut_batch(_items([100, 5]), BatchLimits(max_batch_tokens=50))
    assert [it.encoded.length for it in batch] == [100]


async def test_concurrent_requests_share_a_batch_and_get_their_own_results() -> None:
    model = FakeModel()
    batcher = Batcher(model, BatchLimits(max_batch_size=8, max_delay_s=0.05))
    results = await asyncio.gather(
        batcher.submit([text(5, tag=1)]),
        batcher.submit([text(6, tag=2), text(7, masks=2, tag=3)]),
        batcher.submit([text(5, tag=4)]),
    )
    await batcher.close()
    assert sorted(model.batches[0]) == [1, 2, 3, 4]
    assert results[0][0][0, 0] == 1
    assert results[1][0].shape == (1, 3)
    assert results[1][0][0, 0] == 2
    assert results[1][1].shape == (2, 3)
    assert results[1][1][1, 0] == 3
    assert results[2][0][0, 0] == 4


async def test_large_client_batches_are_split_to_fit() -> None:
    model = FakeModel()
    batcher = Batcher(model, BatchLimits(max_batch_size=4, max_batch_tokens=1000, max_delay_s=0))
    await batcher.submit([text(5, tag=i) for i in range(10)])
    await batcher.close()
    assert sorted(len(b) for b in model.batches) == [2, 4, 4]
    assert sorted(t for b in model.batches for t in b) == list(range(10))


async def test_the_loop_stays_free_while_a_batch_runs() -> None:
    gate = threading.Event()
    model = FakeModel(gate)
    batcher = Batcher(model, BatchLimits(max_delay_s=0))
    pending = asyncio.ensure_future(batcher.submit([text(5, tag=1)]))
    await set_within(model.started, "the model started")
    assert not pending.done()
    await asyncio.sleep(0)  # the loop still runs other work while the model is busy
    gate.set()
    assert (await pending)[0][0, 0] == 1
    await batcher.close()


async def test_admission_control() -> None:
    gate = threading.Event()
    model = FakeModel(gate)
    batcher = Batcher(model, BatchLimits(max_batch_size=1, max_queue=2, max_delay_s=0))
    first = asyncio.ensure_future(batcher.submit([text(5, tag=1)]))
    await set_within(model.started, "the model started")
    waiting = asyncio.ensure_future(batcher.submit([text(5, tag=2), text(5, tag=3)]))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded) as exc:
        await batcher.submit([text(5, tag=4)])
    assert exc.value.status == 429
    assert exc.value.headers["Retry-After"] == "1"
    with pytest.raises(BadRequest, match="at most 2 inputs"):
        await batcher.submit([text(5)] * 3)
    gate.set()
    await first
    await waiting
    assert batcher.stats.rejected == 1
    await batcher.close()


async def test_cancelled_requests_are_dropped_before_compute() -> None:
    gate = threading.Event()
    model = FakeModel(gate)
    batcher = Batcher(model, BatchLimits(max_batch_size=1, max_delay_s=0))
    first = asyncio.ensure_future(batcher.submit([text(5, tag=1)]))
    await set_within(model.started, "the model started")
    gone = asyncio.ensure_future(batcher.submit([text(5, tag=2)]))
    kept = asyncio.ensure_future(batcher.submit([text(5, tag=3)]))
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    await first
    await kept
    assert [t for b in model.batches for t in b] == [1, 3]
    assert batcher.stats.dropped == 1
    await batcher.close()


async def test_a_failing_batch_fails_only_its_own_requests() -> None:
    model = FakeModel(fail_on_tag=2)
    batcher = Batcher(model, BatchLimits(max_batch_size=1, max_delay_s=0))
    ok, bad, after = await asyncio.gather(
        batcher.submit([text(5, tag=1)]),
        batcher.submit([text(5, tag=2)]),
        batcher.submit([text(5, tag=3)]),
        return_exceptions=True,
    )
    assert not isinstance(ok, BaseException)
    assert isinstance(bad, InferenceFailed)
    assert "RuntimeError: boom" in bad.message
    assert not isinstance(after, BaseException)
    assert (await batcher.submit([text(5, tag=4)]))[0][0, 0] == 4
    assert batcher.stats.failed_batches == 1
    await batcher.close()


async def test_a_lone_client_never_waits_for_company() -> None:
    model = FakeModel()
    batcher = Batcher(model, BatchLimits(max_batch_size=8, max_delay_s=3600))
    for tag in (1, 2):
        # With an hour's delay, finishing at all shows that nothing waited for more items.
        assert (await asyncio.wait_for(batcher.submit([text(5, tag=tag)]), HANG_S))[0][0, 0] == tag
    await batcher.close()


async def test_returning_clients_are_gathered_into_one_batch() -> None:
    model = FakeModel()
    batcher = Batcher(model, BatchLimits(max_batch_size=8, max_delay_s=3600))
    await batcher.submit([text(5, tag=i) for i in range(3)])  # the last batch held 3 items
    first = asyncio.ensure_future(batcher.submit([text(5, tag=10)]))
    # Cutting a batch needs only the event loop, so a batcher that did not wait would have taken the item
    # within these turns of the loop, however slow the machine.
    for _ in range(20):
        await asyncio.sleep(0)
    assert batcher.queued == 1  # waiting for about as many as last time
    assert not first.done()
    assert len(model.batches) == 1
    rest = asyncio.ensure_future(batcher.submit([text(5, tag=11), text(5, tag=12)]))
    await asyncio.wait_for(asyncio.gather(first, rest), HANG_S)
    assert sorted(model.batches[-1]) == [10, 11, 12]
    await batcher.close()


async def test_a_steady_load_is_not_cut_into_half_batches() -> None:
    """Items that queued while a batch computed, and that batch's clients coming back, make one batch: a
    load of N clients runs in batches of N, not forever in two halves (the oldest item has waited a whole
    batch by then, so the wait counts from when the worker became free)."""
    gate = threading.Event()
    model = FakeModel(gate)
    delay = 1.0
    batcher = Batcher(model, BatchLimits(max_batch_size=8, max_delay_s=delay))
    first = asyncio.ensure_future(batcher.submit([text(5, tag=i) for i in range(3)]))
    await asyncio.wait_for(asyncio.to_thread(model.started.wait, HANG_S), HANG_S)
    waiting = asyncio.ensure_future(batcher.submit([text(5, tag=10), text(5, tag=11)]))  # came meanwhile
    await asyncio.sleep(delay * 1.2)  # the batch computes for longer than the delay
    gate.set()
    await asyncio.wait_for(first, HANG_S)
    for _ in range(20):  # a batcher that did not wait would have cut the two waiting items by now
        await asyncio.sleep(0)
    assert not waiting.done()
    assert batcher.queued == 2
    back = asyncio.ensure_future(batcher.submit([text(5, tag=20 + i) for i in range(3)]))  # the 3 return
    await asyncio.wait_for(asyncio.gather(waiting, back), HANG_S)
    assert [sorted(b) for b in model.batches] == [[0, 1, 2], [10, 11, 20, 21, 22]]
    await batcher.close()


async def test_workers_compute_batches_at_once() -> None:
    both = threading.Barrier(2, timeout=HANG_S)

    def model(items: Sequence[EncodedText]) -> Float32Array:
        both.wait()  # passes only when two batches are being computed at the same time
        return np.zeros((len(items), 3), dtype=np.float32)

    batcher = Batcher(model, BatchLimits(max_batch_size=1, max_delay_s=0), workers=2)
    results = await asyncio.wait_for(
        asyncio.gather(batcher.submit([text(5, tag=1)]), batcher.submit([text(5, tag=2)])), HANG_S
    )
    assert [r[0].shape for r in results] == [(1, 3), (1, 3)]
    assert batcher.stats.failed_batches == 0
    await batcher.close()


async def test_idle_workers_share_the_waiting_items() -> None:
    model = FakeModel()
    batcher = Batcher(model, BatchLimits(max_batch_size=8, max_delay_s=0), workers=2)
    await batcher.submit([text(5, tag=0)])
    await until(lambda: batcher._idle == 2, "both workers wait for work")
    results = await batcher.submit([text(5, tag=i) for i in range(1, 9)])
    await batcher.close()
    assert sorted(len(b) for b in model.batches[1:]) == [4, 4]
    assert [r[0, 0] for r in results] == list(range(1, 9))


def test_a_batcher_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        Batcher(FakeModel(), BatchLimits(), workers=0)


def test_a_batcher_serves_a_later_event_loop_too() -> None:
    """An engine outlives the loop that first used it (a job calling asyncio.run twice, a test): its workers
    start again on the loop that submits."""
    model = FakeModel()
    batcher = Batcher(model, BatchLimits(max_delay_s=0))

    async def ask(tag: int) -> float:
        (logits,) = await batcher.submit([text(3, tag=tag)])
        return float(logits[0][0])

    first = asyncio.new_event_loop()  # left open and idle, as a session-wide loop between its uses
    try:
        assert first.run_until_complete(ask(1)) == 1.0
        assert asyncio.run(asyncio.wait_for(ask(2), HANG_S)) == 2.0
        asyncio.run(batcher.close())
    finally:
        first.close()
