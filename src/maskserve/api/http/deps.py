"""Look-ups every route shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

from maskserve.core.engine import Engine
from maskserve.core.slot import ModelSlot
from maskserve.protocols.common import parse_flag

T = TypeVar("T")


def slot_of(request: Request) -> ModelSlot:
    slot: ModelSlot = request.app.state.slot
    return slot


def engine_of(request: Request) -> Engine:
    """The engine, or KServe's 503 while the model is not ready."""
    return slot_of(request).engine_or_raise()


def engine_for(request: Request, name: str) -> Engine:
    """The engine serving ``name`` (its served name or Hub id), else KServe's 404; 503 while not ready."""
    slot = slot_of(request)
    slot.check_name(name)
    return slot.engine_or_raise()


async def hf_engine(request: Request, name: str | None, wait_option: bool | None) -> Engine:
    """The Inference API's view: while loading, 503 with ``estimated_time``, unless the client asked to wait
    (``x-wait-for-model`` header or ``options.wait_for_model``), bounded by --max_wait_for_model_s."""
    slot = slot_of(request)
    if name is not None:
        slot.check_name(name)
    message = f"Model {name or slot.model_id or slot.name} is currently loading"
    header = parse_flag(request.headers.get("x-wait-for-model"), "x-wait-for-model")
    wait = header if header is not None else bool(wait_option)
    if wait:
        limit: float = request.app.state.max_wait_for_model_s
        return await slot.wait_engine(limit, loading_message=message)
    return slot.engine_or_raise(loading_message=message)


def use_cache(request: Request, option: bool | None = None) -> bool:
    """``x-use-cache`` (header) wins over ``options.use_cache`` (body); the cache is used by default."""
    header = parse_flag(request.headers.get("x-use-cache"), "x-use-cache")
    if header is not None:
        return header
    return True if option is None else option


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
