"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``) and the standard gRPC health
service.

Everything runs on ``grpc.aio`` in the caller's event loop, the one the HTTP server and the engine's batcher
use: no handler threads. Inference goes through the same data plane as the REST route.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health as _health  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health_pb2 as _health_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health_pb2_grpc as _health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from maskserve import __version__
from maskserve.api.grpc import convert
from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from maskserve.api.grpc.auth import ApiKeyInterceptor
from maskserve.core.answer_size import AnswerLimit
from maskserve.core.context import RequestContext
from maskserve.core.dataplane import DataPlane
from maskserve.core.engine import Engine
from maskserve.core.registry import ModelRegistry, as_registry
from maskserve.core.slot import ModelSlot
from maskserve.core.waiting import KServeWait
from maskserve.errors import MaskserveError, NotFound
from maskserve.protocols import v2

logger = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"
DEFAULT_MAX_MESSAGE_LENGTH = 8 * 1024 * 1024

# The one table from maskserve's errors (by their HTTP status) to gRPC status codes; any other is INTERNAL.
# 400, 404, 429, 503 and 504 follow google.rpc.Code's own HTTP mapping. 413 (a request over one of
# maskserve's size limits) is INVALID_ARGUMENT: the request itself must change, sending it again can never
# succeed, whereas RESOURCE_EXHAUSTED is kept for 429 so that clients may read it as "back off and retry".
# (A message over max_receive_message_length never reaches this code: grpc rejects it with
# RESOURCE_EXHAUSTED.) 415 cannot happen over gRPC but would be the request's fault as well.
STATUS_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(status: int) -> grpc.StatusCode:
    return STATUS_CODES.get(status, grpc.StatusCode.INTERNAL)


def error_code(exc: MaskserveError) -> grpc.StatusCode:
    """An error's own gRPC status when it names one (an answer over the message limit is refused with the
    RESOURCE_EXHAUSTED that grpc's own size check gives), else the table's for its HTTP status."""
    if exc.grpc_status is not None:
        return grpc.StatusCode[exc.grpc_status]
    return grpc_code(exc.status)


Context = grpc.aio.ServicerContext[Any, Any]
_S = TypeVar("_S")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


def _status_mapped(
    method: Callable[[_S, _Req, Context], Awaitable[_Resp]],
) -> Callable[[_S, _Req, Context], Awaitable[_Resp]]:
    """The one place where errors become gRPC statuses; RPC methods just raise."""

    @functools.wraps(method)
    async def wrapper(self: _S, request: _Req, context: Context) -> _Resp:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except MaskserveError as exc:
            if exc.status >= 500:
                logger.error("gRPC %s failed: %s", method.__name__, exc.message)
            # Headers such as Retry-After travel as trailing metadata (keys must be lower case).
            trailers = tuple((key.lower(), value) for key, value in exc.headers.items())
            await context.abort(error_code(exc), exc.message, trailing_metadata=trailers)
        except Exception as exc:
            logger.exception("gRPC %s: unexpected error", method.__name__)
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"internal error ({type(exc).__name__}); the server logs have the details",
            )

    return wrapper


class InferenceServicer:
    """``inference.GRPCInferenceService`` over the served models (the generated code registers it by method
    name)."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        extensions: list[str] | None = None,
        max_send_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
        max_wait_for_model_s: float = 0.0,
    ) -> None:
        self.registry = registry
        self.plane = DataPlane(registry)
        self.extensions = list(extensions or [])
        self.wait = KServeWait(max_wait_for_model_s)
        # An answer over the message limit is refused before it is computed, naming the flag.
        self.answer_limit = AnswerLimit(
            max_send_message_length, "--grpc_max_send_message_length", json_in_json=False
        )

    def _check(self, name: str, version: str) -> ModelSlot:
        slot = self.registry.get(name)
        if version:
            raise NotFound(f"Model {name} has no version {version}: maskserve serves unversioned models")
        return slot

    @_status_mapped
    async def ServerLive(  # noqa: N802 (the protocol's method name)
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_status_mapped
    async def ServerReady(  # noqa: N802 (the protocol's method name)
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.registry.ready)

    @_status_mapped
    async def ModelReady(  # noqa: N802 (the protocol's method name)
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        slot = self._check(request.name, request.version)
        return pb.ModelReadyResponse(ready=slot.ready)

    @_status_mapped
    async def ServerMetadata(  # noqa: N802 (the protocol's method name)
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return convert.server_metadata_to_proto(v2.server_metadata(__version__, extensions=self.extensions))

    @_status_mapped
    async def ModelMetadata(  # noqa: N802 (the protocol's method name)
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        engine = self._check(request.name, request.version).engine_or_raise()
        return convert.model_metadata_to_proto(v2.model_metadata(engine.info))

    @_status_mapped
    async def ModelInfer(  # noqa: N802 (the protocol's method name)
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        # As V2 over REST: a model that is not loaded loads and the call waits (--max_wait_for_model_s).
        self._check(request.model_name, request.model_version)
        served = await self.plane.model(request.model_name, self.wait)
        parsed = convert.infer_request_from_proto(request)
        ctx = RequestContext(answer_limit=self.answer_limit)
        response = await self.plane.v2_infer(served, parsed, ctx)
        return convert.infer_response_to_proto(response, raw=bool(request.raw_input_contents))


# The generated registration function is untyped; a typed alias keeps strict mypy quiet about calling it.
_add_inference_servicer: Callable[[InferenceServicer, grpc.aio.Server], None] = (
    pb_grpc.add_GRPCInferenceServiceServicer_to_server
)


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"{host}:{port}"


def _follow_registry(registry: ModelRegistry, health: Any) -> None:
    """Keep the standard health service in step with the server's readiness: SERVING only while ready."""
    pending: set[asyncio.Task[None]] = set()

    def on_ready(ready: bool) -> None:
        status = (
            _health_pb2.HealthCheckResponse.SERVING if ready else _health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE_NAME):
            task = asyncio.get_running_loop().create_task(health.set(service, status))
            pending.add(task)  # the loop holds tasks weakly
            task.add_done_callback(pending.discard)

    registry.add_listener(on_ready)


async def start_grpc_server(
    target: Engine | ModelSlot | ModelRegistry,
    *,
    host: str,
    port: int,
    max_send_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
    max_receive_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
    api_keys: frozenset[str] = frozenset(),
    protect_health: bool = False,
    max_wait_for_model_s: float = 0.0,
) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server in the running event loop; returns it and the bound port (port 0: ephemeral).

    Stop it with ``await server.stop(grace)``. Binding fails loudly (RuntimeError) when the port is taken:
    SO_REUSEPORT, on by default in grpc, is switched off so two servers never share a port silently.
    """
    registry = as_registry(target)
    interceptors = [ApiKeyInterceptor(api_keys, protect_health=protect_health)] if api_keys else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_send_message_length", max_send_message_length),
            ("grpc.max_receive_message_length", max_receive_message_length),
            ("grpc.so_reuseport", 0),
        ],
    )
    servicer = InferenceServicer(
        registry, max_send_message_length=max_send_message_length, max_wait_for_model_s=max_wait_for_model_s
    )
    _add_inference_servicer(servicer, server)
    health = _health.aio.HealthServicer()
    _follow_registry(registry, health)
    _health_pb2_grpc.add_HealthServicer_to_server(health, server)
    bound = server.add_insecure_port(_address(host, port))
    await server.start()
    logger.info("gRPC (Open Inference Protocol) listening on %s", _address(host, bound))
    return server, bound
