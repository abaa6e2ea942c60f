"""Engines over the fixture models, loaded once per (model, settings) for the whole session."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from maskserve.config import Settings
from maskserve.core.engine import Engine
from maskserve.core.repository import load_engine


def settings_for(path: Path, **overrides: Any) -> Settings:
    """In-process engines run torch unless a test asks for another backend: torch is the reference the
    parity tests hold the answers to (the default, auto, would pick ONNX Runtime on this CPU)."""
    overrides.setdefault("backend", "torch")
    return Settings(model=str(path), model_name=overrides.pop("model_name", "model"), **overrides)


@cache
def _cached(path: str, frozen: tuple[tuple[str, Any], ...]) -> Engine:
    return load_engine(settings_for(Path(path), **dict(frozen)))


def engine_for(path: Path, **overrides: Any) -> Engine:
    return _cached(str(path), tuple(sorted(overrides.items())))
