"""Waiting for a condition instead of sleeping for a while: poll it until it holds. The deadline only bounds
a hang; a test never depends on how long the condition took, so a slow or loaded machine changes nothing
but the run time."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# Far more than any condition here needs, even on a loaded machine: reaching it means something hangs.
HANG_S = 60.0


def poll(
    read: Callable[[], T], until: Callable[[T], bool], *, timeout: float = HANG_S, every: float = 0.01
) -> T:
    """``read()`` until ``until`` holds for its value or ``timeout`` passes; the last value either way, for
    the caller to assert on."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(every)


def wait_until(
    condition: Callable[[], bool], what: str, *, timeout: float = HANG_S, every: float = 0.01
) -> None:
    """Return once ``condition()`` holds; fail the test, saying ``what`` never happened, if it never does."""
    if not poll(condition, bool, timeout=timeout, every=every):
        pytest.fail(f"{what}: not within {timeout:.0f} s")


async def until(condition: Callable[[], bool], what: str, *, timeout: float = HANG_S) -> None:
    """``wait_until`` for a coroutine: the event loop keeps running (other tasks progress) while it waits."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.001)


async def set_within(event: threading.Event, what: str, *, timeout: float = HANG_S) -> None:
    """Wait, off the event loop, for an event that another thread sets; fail if it never is."""
    if not await asyncio.to_thread(event.wait, timeout):
        pytest.fail(f"{what}: not within {timeout:.0f} s")
