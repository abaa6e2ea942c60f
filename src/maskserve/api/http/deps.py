"""Look-ups every route shares."""

from __future__ import annotations

from fastapi import Request

from maskserve.core.engine import Engine
from maskserve.errors import NotFound


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def engine_for(request: Request, name: str) -> Engine:
    """The engine serving ``name`` (its served name or Hub id), else KServe's 404."""
    engine = engine_of(request)
    if not engine.info.answers_to(name):
        raise NotFound(f"Model with name {name} does not exist.")
    return engine
