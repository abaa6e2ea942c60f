"""Blocking work (a model's download and load) on a daemon thread of its own, awaited from the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import TypeVar

A = TypeVar("A")
T = TypeVar("T")


def in_daemon_thread(fn: Callable[[A], T], arg: A, name: str) -> asyncio.Future[T]:
    """``fn(arg)`` on a daemon thread: a SIGTERM during a long download must not wait for it, as asyncio's
    default executor would (it joins its threads at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = fn(arg)
        except BaseException as exc:
            answer = functools.partial(settle, functools.partial(future.set_exception, exc))
        else:
            answer = functools.partial(settle, functools.partial(future.set_result, result))
        # A closed loop means the server stopped meanwhile: nobody waits for the answer any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(answer)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
