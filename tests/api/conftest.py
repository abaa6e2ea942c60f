from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from maskserve.api.http.app import create_app
from support.engines import engine_for


def client_for(path: Path, **settings: object) -> httpx.AsyncClient:
    app = create_app(engine_for(path, **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def client(bert_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(bert_dir, model_name="bert") as c:
        yield c
