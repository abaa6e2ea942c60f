"""The FastAPI application: routers and error handlers around one engine."""

from __future__ import annotations

from fastapi import FastAPI

from maskserve import __version__
from maskserve.api.http.errors import install_error_handlers
from maskserve.api.http.openapi import install_openapi
from maskserve.api.http.responses import JSONResponse
from maskserve.api.http.routes import hf, v1, v2
from maskserve.core.engine import Engine


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(
        title="maskserve",
        version=__version__,
        description=(
            "Fill-mask inference: KServe V1, Open Inference Protocol and the Hugging Face Inference API."
        ),
        default_response_class=JSONResponse,
    )
    app.state.engine = engine
    install_error_handlers(app)
    install_openapi(app)
    for module in (v1, v2, hf):
        app.include_router(module.router)
    return app
