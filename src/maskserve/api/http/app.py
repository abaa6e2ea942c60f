"""The FastAPI application: routers, error handlers and middlewares around one model slot."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

from maskserve import __version__
from maskserve.api.http.auth import ApiKeyMiddleware
from maskserve.api.http.docs import install_docs
from maskserve.api.http.errors import install_error_handlers
from maskserve.api.http.middleware import BodyLimitMiddleware, RequestContextMiddleware
from maskserve.api.http.openapi import install_openapi
from maskserve.api.http.responses import JSONResponse
from maskserve.api.http.routes import hf, repository, v1, v2
from maskserve.api.http.routes.playground import install_playground
from maskserve.config import Settings
from maskserve.core.dataplane import DataPlane
from maskserve.core.engine import Engine
from maskserve.core.metrics import Metrics
from maskserve.core.registry import ModelRegistry, as_registry
from maskserve.core.slot import ModelSlot


def create_app(
    target: Engine | ModelSlot | ModelRegistry,
    settings: Settings | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """``target``: the models to serve: a registry, or one model (a loaded engine, or the slot the server
    fills once loading in the background is done).

    ``settings`` supplies the HTTP limits and keys (defaults when None, as in tests that build an app
    around an engine).
    """
    registry = as_registry(target)
    settings = settings or Settings.model_construct()
    if metrics is None:
        engines = [s.engine for s in registry.slots if s.engine is not None and s.engine.metrics is not None]
        metrics = engines[0].metrics if engines else None
    metrics = metrics or Metrics(registry.names[0] if registry.names else "model")
    app = FastAPI(
        title="maskserve",
        version=__version__,
        description=(
            "Fill-mask inference: KServe V1, Open Inference Protocol and the Hugging Face Inference API."
        ),
        default_response_class=JSONResponse,
        # Served by install_docs from packaged assets instead of FastAPI's CDN links.
        docs_url=None,
        redoc_url=None,
    )
    app.state.registry = registry
    app.state.plane = DataPlane(registry)
    app.state.metrics = metrics
    app.state.max_wait_for_model_s = settings.max_wait_for_model_s
    install_error_handlers(app)
    install_openapi(app, registry)
    install_docs(app)
    for module in (v1, v2, hf):
        app.include_router(module.router)
    app.include_router(repository.router if settings.enable_repository_api else repository.off)
    if settings.enable_playground:
        install_playground(app)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        body, content_type = metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    # Added innermost first: the request context (id, access log, metrics) sees every answer, the 401s
    # and 413s of the layers inside it included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    keys = settings.api_keys()
    if keys:
        app.add_middleware(ApiKeyMiddleware, keys=keys, protect_health=settings.protect_health)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, log_bodies=settings.log_requests)
    return app
