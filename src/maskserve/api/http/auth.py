"""API keys on HTTP: ``Authorization: Bearer <key>`` on inference and metadata routes.

Probes (liveness, readiness, KServe's model-ready routes) and /metrics stay open unless the server runs
with --protect_health, since Kubernetes and Prometheus do not send keys. The documentation pages are open:
they describe the API, not the model.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from maskserve.api.http.responses import error_response
from maskserve.api.keys import bearer_token, key_matches

_PROBES = re.compile(r"^/v2/health/(live|ready)$|^/v1/models/[^/:]+$|^/v2/models/[^/]+/ready$|^/$")
_METRICS = "/metrics"
_DOCS = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", "/playground"}
_ASSETS = ("/docs/assets/", "/playground/assets/")


def is_open_route(method: str, path: str, *, protect_health: bool) -> bool:
    # The pages and their assets describe the API; every call they make needs a key like any other.
    if path in _DOCS or path.startswith(_ASSETS):
        return True
    if protect_health:
        return False
    if path == _METRICS:
        return True
    return method in {"GET", "HEAD"} and _PROBES.match(path) is not None


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, *, keys: frozenset[str], protect_health: bool = False) -> None:
        self.app = app
        self.keys = keys
        self.protect_health = protect_health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open_route(
            scope["method"], scope["path"], protect_health=self.protect_health
        ):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        token = bearer_token(header)
        if token is not None and key_matches(token, self.keys):
            await self.app(scope, receive, send)
            return
        reason = "no API key was sent" if header is None else "the API key is not valid"
        response = error_response(
            401,
            f"{reason}: send the header 'Authorization: Bearer <key>' with a key this server accepts",
            {"WWW-Authenticate": 'Bearer realm="maskserve"'},
        )
        await response(scope, receive, send)
