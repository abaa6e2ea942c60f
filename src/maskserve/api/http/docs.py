"""/docs (Swagger UI) and /redoc with their scripts and styles served by this server, from the assets the
fastapi-offline package ships, not from a CDN: a model server often runs where the browser that opens its
docs can reach the server but not the internet, and FastAPI's defaults then show a blank page."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = "/docs/assets"
DOCS = "/docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
REDOC = "/redoc"


def assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install_docs(app: FastAPI) -> None:
    """Call on an app made with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")

    def url(request: Request, path: str) -> str:
        # Behind a proxy that strips a prefix (root_path), the page must ask for the prefixed paths.
        return f"{request.scope.get('root_path', '')}{path}"

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=url(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=url(request, OAUTH2_REDIRECT),
            swagger_js_url=url(request, f"{ASSETS}/swagger-ui-bundle.js"),
            swagger_css_url=url(request, f"{ASSETS}/swagger-ui.css"),
            swagger_favicon_url=url(request, f"{ASSETS}/favicon.png"),
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=url(request, app.openapi_url or "/openapi.json"),
            title=f"{app.title} - ReDoc",
            redoc_js_url=url(request, f"{ASSETS}/redoc.standalone.js"),
            redoc_favicon_url=url(request, f"{ASSETS}/favicon.png"),
            with_google_fonts=False,
        )
