"""The playground: one page to try the served models in a browser, calling the public HF API route.

Its page, script and style ship inside the package (no CDN, no build step at install time). The page gets
the served models and their mask tokens inlined when it is served; everything else it asks of the HF API
route as any client would (with the API key typed into it, when the server needs one). Nothing is stored.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, RedirectResponse

from maskserve.api.http.deps import registry_of
from maskserve.params import FillMaskParams, bounds

ASSETS_DIR = Path(__file__).resolve().parents[1] / "playground"
PAGE = "/playground"
ASSETS = "/playground/assets"

router = APIRouter()


@cache
def _template() -> str:
    return (ASSETS_DIR / "index.html").read_text(encoding="utf-8")


def models_json(request: Request) -> str:
    """The served models for the page: name, state and mask token (known once loaded)."""
    models = [
        {
            "name": slot.name,
            "state": slot.state.value,
            "mask_token": slot.engine.info.mask_token if slot.engine is not None else None,
        }
        for slot in registry_of(request).slots
    ]
    return _script_json(models)


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get(PAGE, include_in_schema=False)
async def playground(request: Request) -> HTMLResponse:
    page = _template().replace("__MASKSERVE_MODELS__", models_json(request))
    return HTMLResponse(page.replace("__MASKSERVE_PARAMETERS__", _script_json(bounds(FillMaskParams))))


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> RedirectResponse:
    # Browsers ask for /favicon.ico whatever the page links; the icon is the playground's SVG.
    return RedirectResponse(f"{ASSETS}/favicon.svg", status_code=301)


def install_playground(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=ASSETS_DIR), name="playground-assets")
