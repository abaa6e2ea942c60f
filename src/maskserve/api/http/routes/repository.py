"""The model repository extension of the Open Inference Protocol, as KServe and Triton serve it: index,
load, unload. Off unless --enable_repository_api (loading is a privileged act); API keys apply."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from maskserve.api.http.deps import registry_of
from maskserve.api.http.openapi import ERRORS
from maskserve.errors import NotFound
from maskserve.protocols import schemas, v2

router = APIRouter(tags=["Model repository (Open Inference Protocol extension)"])
# Answers every repository route while the API is off, so a client learns why rather than a bare 404.
off = APIRouter(include_in_schema=False)


@router.post("/v2/repository/index", response_model=list[schemas.RepositoryModel])
async def index(request: Request) -> list[dict[str, str]]:
    """Every model with its state: UNAVAILABLE, LOADING, READY or UNLOADING (and why, when it failed)."""
    return v2.repository_index(registry_of(request).states())


@router.post("/v2/repository/models/{name}/load", response_model=schemas.RepositoryAction, responses=ERRORS)
async def load(request: Request, name: str) -> dict[str, Any]:
    """Load the model and answer once it serves; loading a loaded model is a no-op (one load)."""
    registry = registry_of(request)
    slot = registry.get(name)
    await registry.wait_loaded(slot, request.app.state.max_wait_for_model_s)
    return {"name": slot.name, "load": True}


@router.post("/v2/repository/models/{name}/unload", response_model=schemas.RepositoryAction, responses=ERRORS)
async def unload(request: Request, name: str) -> dict[str, Any]:
    """Take no new requests for the model, wait for those in flight, then free it."""
    slot = await registry_of(request).unload(name)
    return {"name": slot.name, "unload": True}


@off.post("/v2/repository/{rest:path}")
async def repository_off(rest: str) -> None:
    raise NotFound(
        "the model repository API is off on this server; start it with --enable_repository_api to index, "
        "load and unload models here"
    )
