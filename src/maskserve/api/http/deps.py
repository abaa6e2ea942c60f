"""Look-ups every route shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

from maskserve.core.context import RequestContext
from maskserve.core.dataplane import DataPlane
from maskserve.core.registry import ModelRegistry
from maskserve.core.slot import ModelSlot
from maskserve.core.waiting import HFWait, KServeWait
from maskserve.protocols.common import parse_flag

T = TypeVar("T")


def registry_of(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def plane_of(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.plane
    return plane


def slot_for(request: Request, name: str) -> ModelSlot:
    """The slot serving ``name`` (served name or Hub id), else KServe's 404 listing the names."""
    return registry_of(request).get(name)


def kserve_wait(request: Request) -> KServeWait:
    """V1 and V2: a model that is not loaded loads, and the request waits up to --max_wait_for_model_s."""
    return KServeWait(request.app.state.max_wait_for_model_s)


def hf_wait(request: Request, wait_option: bool | None) -> HFWait:
    """The Inference API's: 503 with ``estimated_time`` while a model loads, unless the client asked to wait
    (``x-wait-for-model`` header or ``options.wait_for_model``), bounded by --max_wait_for_model_s."""
    header = parse_flag(request.headers.get("x-wait-for-model"), "x-wait-for-model")
    wait = header if header is not None else bool(wait_option)
    return HFWait(wait, request.app.state.max_wait_for_model_s)


def context(request: Request, use_cache_option: bool | None = None) -> RequestContext:
    """``x-use-cache`` (header) wins over ``options.use_cache`` (body); the cache is used by default."""
    return RequestContext(use_cache=use_cache(request, use_cache_option))


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
