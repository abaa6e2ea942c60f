"""API keys on gRPC: metadata ``authorization: Bearer <key>``, checked before any handler runs.

As on HTTP, liveness, readiness and the standard health service stay open unless --protect_health.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from maskserve.api.keys import bearer_token, key_matches

_OPEN_METHODS = {
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
    "/inference.GRPCInferenceService/ModelReady",
}
_HEALTH_PREFIX = "/grpc.health.v1.Health/"


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: frozenset[str], *, protect_health: bool = False) -> None:
        self.keys = keys
        self.protect_health = protect_health

    def _is_open(self, method: str) -> bool:
        if self.protect_health:
            return False
        return method in _OPEN_METHODS or method.startswith(_HEALTH_PREFIX)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = details.method
        if self._is_open(method):
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        header = metadata.get("authorization")
        token = bearer_token(header if isinstance(header, str) else None)
        if token is not None and key_matches(token, self.keys):
            return await continuation(details)
        reason = "no API key was sent" if header is None else "the API key is not valid"
        message = f"{reason}: send the metadata 'authorization: Bearer <key>' with a key this server accepts"

        async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        # Every method of the inference service is unary-unary; a stream would be refused the same way.
        return grpc.unary_unary_rpc_method_handler(deny)
