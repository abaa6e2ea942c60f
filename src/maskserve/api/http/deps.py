"""Look-ups every route shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

from maskserve.core.engine import Engine
from maskserve.errors import NotFound

T = TypeVar("T")


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def engine_for(request: Request, name: str) -> Engine:
    """The engine serving ``name`` (its served name or Hub id), else KServe's 404."""
    engine = engine_of(request)
    if not engine.info.answers_to(name):
        raise NotFound(f"Model with name {name} does not exist.")
    return engine


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client goes away (so its queued inputs are dropped)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        # The body has been read, so the next message can only be the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    raise ClientDisconnected
