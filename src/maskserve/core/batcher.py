"""Cross-request dynamic batching in front of the model workers.

Every text of every request is one queue item. One loop per model worker cuts batches and runs them, one
at a time, on that worker's own thread, so while the model computes a batch the next one gathers. With
one worker (the default) the backend spreads each batch over every core; with several, each batch runs on
its share of the cores, so the server's own work pre-empts one worker's thread instead of stalling a
batch split across every core. A batch is cut by a maximum size and a budget of padded tokens; it always
starts with the oldest waiting item (nothing starves) and is filled with the items closest to it in length
(little padding). Items whose request was cancelled (the client left) are dropped before compute. A
failing batch fails only its own items. Each item says what it needs back (:mod:`maskserve.core.rows`), so one
batch serves fill-mask rows and score rows alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from maskserve.core.rows import FULL_ROWS, Need
from maskserve.core.split import split_by_masks
from maskserve.domain import EncodedText, Float32Array
from maskserve.errors import BadRequest, InferenceFailed, Overloaded

logger = logging.getLogger(__name__)

RunBatch = Callable[[Sequence[EncodedText]], Float32Array]
# Told of every computed batch: its size, its padded tokens and each item's wait in the queue (seconds).
OnBatch = Callable[[int, int, Sequence[float]], None]


@dataclass
class BatchStats:
    """Counters for metrics and tests."""

    batches: int = 0
    items: int = 0
    padded_tokens: int = 0
    dropped: int = 0
    rejected: int = 0
    failed_batches: int = 0
    last_sizes: list[int] = field(default_factory=list)


@dataclass
class _Item:
    encoded: EncodedText
    future: asyncio.Future[Any]
    enqueued: float
    need: Need = FULL_ROWS


@dataclass(frozen=True)
class BatchLimits:
    max_batch_size: int = 32
    max_batch_tokens: int = 4096
    max_delay_s: float = 0.01
    max_queue: int = 1024


def cut_batch(pending: list[_Item], limits: BatchLimits) -> list[_Item]:
    """Oldest item first, then the items nearest to it in length while size and padded-token budget allow."""
    oldest = pending[0]
    chosen = [oldest]
    width = oldest.encoded.length
    others = sorted(pending[1:], key=lambda it: (abs(it.encoded.length - oldest.encoded.length), it.enqueued))
    for item in others:
        if len(chosen) >= limits.max_batch_size:
            break
        new_width = max(width, item.encoded.length)
        if new_width * (len(chosen) + 1) > limits.max_batch_tokens:
            continue
        chosen.append(item)
        width = new_width
    return chosen


class Batcher:
    def __init__(
        self,
        run_batch: RunBatch,
        limits: BatchLimits,
        *,
        thread_name: str = "maskserve-model",
        on_batch: OnBatch | None = None,
        on_queue: Callable[[int], None] | None = None,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a batcher needs at least one worker, not {workers}")
        self._run_batch = run_batch
        self._on_batch = on_batch
        self._on_queue = on_queue
        self.limits = limits
        self.stats = BatchStats()
        self._pending: list[_Item] = []
        self._idle = 0
        self._last_batch = 0  # the size of the batch any worker finished last (0: none yet)
        self._wakeup: asyncio.Event | None = None
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def _ensure_started(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        # Workers run on the loop that submits; a batcher used from another loop later (a test, a job that
        # runs asyncio twice) starts them again there, and what waited for the old loop is dropped.
        moved = any(task.get_loop() is not loop for task in self._tasks)
        if not self._tasks or moved or any(task.done() for task in self._tasks):
            for task in self._tasks:
                with contextlib.suppress(RuntimeError):  # its loop may be closed already
                    task.cancel()
            if moved:
                self._pending = [it for it in self._pending if it.future.get_loop() is loop]
            self._wakeup = asyncio.Event()
            self._tasks = [
                loop.create_task(self._loop(), name=f"maskserve-batcher-{i}") for i in range(self._workers)
            ]
        assert self._wakeup is not None
        return self._wakeup

    async def submit(self, items: Sequence[EncodedText], needs: Sequence[Need] | None = None) -> list[Any]:
        """What each item needs from its masks (``needs[i]``; by default the logits, [masks, vocab]), in
        order."""
        if len(items) > self.limits.max_queue:
            raise BadRequest(
                f"a request may hold at most {self.limits.max_queue} inputs (--max_queue), "
                f"this one has {len(items)}"
            )
        if self.queued + len(items) > self.limits.max_queue:
            self.stats.rejected += 1
            raise Overloaded(
                f"the server is at capacity ({self.queued} inputs waiting, limit {self.limits.max_queue}); "
                "retry shortly"
            )
        wakeup = self._ensure_started()
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        wanted = needs if needs is not None else [FULL_ROWS] * len(items)
        queued = [_Item(e, loop.create_future(), now, n) for e, n in zip(items, wanted, strict=True)]
        self._pending.extend(queued)
        self._queue_changed()
        wakeup.set()
        try:
            return list(await asyncio.gather(*(q.future for q in queued)))
        except asyncio.CancelledError:
            # The client left: whatever has not been computed yet leaves the queue now, not when the
            # batcher next looks (which, on an idle server, may be never).
            for q in queued:
                q.future.cancel()
            gone = {id(q) for q in queued}
            waiting = len(self._pending)
            self._pending = [it for it in self._pending if id(it) not in gone]
            self.stats.dropped += waiting - len(self._pending)
            self._queue_changed()
            raise

    def _queue_changed(self) -> None:
        if self._on_queue is not None:
            self._on_queue(len(self._pending))

    async def _next_batch(self, own_last: int) -> list[_Item]:
        """The next batch for a worker whose last batch held ``own_last`` items (0: none yet)."""
        assert self._wakeup is not None
        # The clients of the batch that finished last are on their way back; with several workers, a worker
        # that only looked at its own last batch could keep taking them one at a time. Those already
        # waiting came while it computed: a steady load of N clients is N items, not the last batch's share
        # of them (waiting for only that many would keep cutting it into two half batches for good).
        waiting = sum(1 for it in self._pending if not it.future.done())
        expected = max(1, max(own_last, self._last_batch) + waiting)
        self._idle += 1
        try:
            return await self._wait_and_cut(self._wakeup, expected, time.monotonic())
        finally:
            self._idle -= 1

    async def _wait_and_cut(self, wakeup: asyncio.Event, expected: int, free_since: float) -> list[_Item]:
        while True:
            live = [it for it in self._pending if not it.future.done()]
            self.stats.dropped += len(self._pending) - len(live)
            self._pending = live
            if not self._pending:
                wakeup.clear()
                await wakeup.wait()
                continue
            if len(self._pending) < min(expected, self.limits.max_batch_size):
                # Clients served by the last batch tend to come back together: wait (briefly) for about as
                # many items as they and those already waiting make, so a steady load is not cut into one
                # large and one small batch. The wait counts from when the worker was free or the oldest
                # item came, whichever is later: under load the oldest item has waited a whole batch
                # already, and the returning clients only just got their answers. A lone client (last
                # batch of one, nothing waiting) never waits.
                start = max(self._pending[0].enqueued, free_since)
                remaining = start + self.limits.max_delay_s - time.monotonic()
                if remaining > 0:
                    wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), timeout=remaining)
                    continue
            limits = self.limits
            if self._idle > 1:
                # Other workers are idle too: take a fair share, so no worker (and its core) sits idle
                # while one computes everything.
                share = -(-len(self._pending) // self._idle)
                limits = replace(limits, max_batch_size=min(limits.max_batch_size, share))
            batch = cut_batch(self._pending, limits)
            chosen = {id(it) for it in batch}
            self._pending = [it for it in self._pending if id(it) not in chosen]
            self._queue_changed()
            return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        expected = 0
        while True:
            batch = await self._next_batch(expected)
            live = [it for it in batch if not it.future.done()]
            self.stats.dropped += len(batch) - len(live)
            if not live:
                continue
            started = time.monotonic()
            try:
                answers = await loop.run_in_executor(self._executor, self._compute, live)
            except Exception as exc:
                self.stats.failed_batches += 1
                logger.exception("a batch of %d inputs failed", len(live))
                error = InferenceFailed(
                    f"inference failed for this request's batch: {type(exc).__name__}: {exc}"
                )
                for it in live:
                    if not it.future.done():
                        it.future.set_exception(error)
                continue
            self._record(live, started)
            expected = self._last_batch = len(live)
            for it, answer in zip(live, answers, strict=True):
                if not it.future.done():
                    it.future.set_result(answer)

    def _compute(self, batch: list[_Item]) -> list[Any]:
        """On a model thread: the batch's logits, then each item's share as that item needs it."""
        logits = self._run_batch([it.encoded for it in batch])
        rows = split_by_masks([it.encoded for it in batch], logits)
        return [it.need.take(part) for it, part in zip(batch, rows, strict=True)]

    def _record(self, batch: list[_Item], started: float) -> None:
        padded = len(batch) * max(it.encoded.length for it in batch)
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.padded_tokens += padded
        self.stats.last_sizes = [*self.stats.last_sizes[-99:], len(batch)]
        if self._on_batch is not None:
            self._on_batch(len(batch), padded, [started - it.enqueued for it in batch])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for it in self._pending:
            it.future.cancel()
        self._executor.shutdown(wait=True)
