from __future__ import annotations

import asyncio
from typing import Any

import pytest

from maskserve.api.http.deps import ClientDisconnected, unless_disconnected


class FakeRequest:
    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def test_result_when_the_client_stays() -> None:
    async def work() -> int:
        return 7

    assert await unless_disconnected(FakeRequest(), work()) == 7  # type: ignore[arg-type]


async def test_disconnect_cancels_the_work() -> None:
    request = FakeRequest()
    cancelled = asyncio.Event()

    async def work() -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    pending = asyncio.ensure_future(unless_disconnected(request, work()))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    request.gone.set()
    with pytest.raises(ClientDisconnected):
        await pending
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_errors_of_the_work_propagate() -> None:
    async def work() -> int:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await unless_disconnected(FakeRequest(), work())  # type: ignore[arg-type]
