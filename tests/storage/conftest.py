"""Every storage test runs isolated: loopback only, no ambient Hub or AWS credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.hubfake import FakeHub, isolate, serve_hub


@pytest.fixture(autouse=True)
def _isolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    blocked = isolate(monkeypatch, tmp_path)
    yield
    assert blocked() == [], f"a test tried to reach {blocked()}"


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with serve_hub() as fake:
        yield fake


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    """An empty directory to download into: after any call it must hold the model or nothing at all."""
    directory = tmp_path / "models"
    directory.mkdir()
    return directory
