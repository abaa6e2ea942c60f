"""One real server per test module: a module may set ``SERVER_FLAGS`` (a tuple of extra flags)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.live import LiveServer, start_server


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, bert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    flags: tuple[str, ...] = getattr(request.module, "SERVER_FLAGS", ())
    log_path = tmp_path_factory.mktemp("reliability") / "maskserve.log"
    live = start_server(bert_dir, log_path, *flags)
    try:
        yield live
    finally:
        live.stop()
