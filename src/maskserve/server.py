"""Process entry points: serve a model (listening at once, loading it in the background) or answer one
prediction."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from maskserve.config import Settings
from maskserve.domain import TASK_FILL_MASK, TASK_SCORE, TaskCall
from maskserve.errors import MaskserveError, ModelLoadError
from maskserve.logs import configure_logging
from maskserve.params import FillMaskParams, ScoreParams

if TYPE_CHECKING:
    from maskserve.core.engine import Engine
    from maskserve.core.registry import ModelRegistry

logger = logging.getLogger("maskserve")


def _graceful_server(config: Any, on_exit: Any) -> Any:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Uvicorn re-raises SIGTERM after draining, so the process would die by the signal; a drained
        server should exit 0 instead. The first signal also turns readiness off at once."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            on_exit()
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return GracefulServer(config)


def serve(settings: Settings) -> int:
    """Exit status: 0 after a graceful stop, 1 when the model could not be loaded."""
    configure_logging(settings.log_level, settings.log_format)
    try:
        keys = settings.api_keys()
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    if keys:
        logger.info("API keys required on inference and metadata routes (%d configured)", len(keys))
    return asyncio.run(_serve(settings))


# The exit status of a server that cannot take its ports (uvicorn's own startup-failure status).
EXIT_CANNOT_BIND = 3


def _bind_http(host: str, port: int) -> socket.socket:
    """The HTTP listening socket, bound here rather than by uvicorn so that a taken port is one line naming
    the flag (uvicorn logs the OS error alone); OSError when the address cannot be had."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _cannot_bind(what: str, host: str, port: int, flag: str, reason: str, hint: str) -> int:
    logger.error(
        "cannot serve %s on %s:%d (%s): choose another port with %s%s", what, host, port, reason, flag, hint
    )
    return EXIT_CANNOT_BIND


def _links(settings: Settings, port: int) -> str:
    shown = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    base = f"http://{shown}:{port}"
    pages = f"API docs at {base}/docs" + (
        f", playground at {base}/playground" if settings.enable_playground else ""
    )
    return f"HTTP (KServe V1, V2, HF Inference API) on {base}; {pages}"


async def _start_grpc(settings: Settings, registry: ModelRegistry) -> Any:
    """The gRPC server, or None when it is off; RuntimeError when its port cannot be had."""
    if not settings.enable_grpc:
        return None
    from maskserve.api.grpc.service import start_grpc_server

    server, _ = await start_grpc_server(
        registry,
        host=settings.host,
        port=settings.grpc_port,
        max_send_message_length=settings.grpc_max_send_message_length,
        max_receive_message_length=settings.grpc_max_receive_message_length,
        api_keys=settings.api_keys(),
        protect_health=settings.protect_health,
        max_wait_for_model_s=settings.max_wait_for_model_s,
    )
    return server


async def _serve(settings: Settings) -> int:
    """HTTP and gRPC in one event loop: the engine's batcher belongs to the loop that runs it."""
    import uvicorn

    from maskserve.api.http.app import create_app
    from maskserve.core.metrics import Metrics
    from maskserve.core.repository import build_registry, load_at_start
    from maskserve.core.slot import ModelState

    metrics = Metrics(settings.model_name)
    try:
        registry = build_registry(settings, metrics)
    except (ValueError, ModelLoadError) as exc:
        logger.error("%s", exc)
        return 2
    config = uvicorn.Config(
        create_app(registry, settings, metrics),
        host=settings.host,
        port=settings.http_port,
        log_level=settings.log_level,
        log_config=None,  # our logging setup stays in place
        access_log=False,  # the request-context middleware writes the access log
        timeout_graceful_shutdown=int(settings.grace_period),
    )
    exit_code = 0

    http = _graceful_server(config, registry.set_stopping)

    if not settings.several_models:
        # KServe's one model: a model that cannot load ends the process (exit 1), as KServe's server does.
        (only,) = registry.slots

        def on_state(state: ModelState) -> None:
            nonlocal exit_code
            if state is ModelState.FAILED:  # the registry has logged why
                logger.error("cannot serve the model, so the server stops (exit status 1)")
                exit_code = 1
                http.should_exit = True

        only.add_listener(on_state)

    try:
        http_socket = _bind_http(settings.host, settings.http_port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _cannot_bind("HTTP", settings.host, settings.http_port, "--http_port", reason, "")
    links = _links(settings, http_socket.getsockname()[1])
    announced = False

    def announce(ready: bool) -> None:
        # The links once the models are being served, not while a model that may never load is loading.
        nonlocal announced
        if ready and not announced and not http.should_exit:
            announced = True
            logger.info("%s", links)

    try:
        grpc_server = await _start_grpc(settings, registry)
    except RuntimeError:  # grpc says only "Failed to bind to address ..."
        http_socket.close()
        return _cannot_bind(
            "gRPC",
            settings.host,
            settings.grpc_port,
            "--grpc_port",
            "the port is in use or not allowed",
            " or turn gRPC off with --enable_grpc false",
        )
    registry.add_listener(announce)
    loading = asyncio.ensure_future(load_at_start(registry))
    # Several models of which none loaded at start still serve (on request, the repository API).
    loading.add_done_callback(lambda _: announce(True))
    try:
        await http.serve(sockets=[http_socket])
    finally:
        registry.set_stopping()
        loading.cancel()
        if grpc_server is not None:
            await grpc_server.stop(settings.grace_period)
        await registry.aclose()
    return exit_code


def predict(settings: Settings, text: str, *, top_k: int, targets: list[str] | None) -> int:
    """``maskserve predict``: the HF API's answer for one text, on stdout."""
    from maskserve.protocols.hf import render_hf_response

    params = FillMaskParams(top_k=top_k, targets=tuple(targets) if targets else None)
    return _one_off(settings, TaskCall(TASK_FILL_MASK, [text], params), lambda r: render_hf_response(r, True))


def score(settings: Settings, texts: list[str], params: ScoreParams) -> int:
    """``maskserve score``: each text's score, as the HF API's score route answers it, on stdout."""
    from maskserve.protocols.hf import render_scores

    return _one_off(
        settings, TaskCall(TASK_SCORE, texts, params), lambda r: render_scores(r, len(texts) == 1)
    )


def _one_off(settings: Settings, call: TaskCall, render: Callable[[list[Any]], Any]) -> int:
    """Load the model, answer ``call``, print the answer as JSON on stdout and only its warnings on
    stderr. Exit status: 0, 1 when the model cannot load, 2 for a bad request."""
    from maskserve.core.context import RequestContext
    from maskserve.core.dataplane import TASKS
    from maskserve.core.repository import load_engine
    from maskserve.protocols.common import dumps

    configure_logging(settings.log_level, settings.log_format)
    if settings.log_level != "debug":
        # stderr carries the answer's problems only, not a progress bar per weight file.
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    ctx = RequestContext()

    async def run() -> list[Any]:
        engine: Engine = load_engine(settings)
        try:
            return await engine.run(TASKS[call.task], call.texts, call.params, ctx)
        finally:
            await engine.aclose()

    try:
        results = asyncio.run(run())
    except MaskserveError as exc:
        print(f"maskserve: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ModelLoadError) else 2
    for warning in ctx.warnings:
        print(f"maskserve: warning: {warning}", file=sys.stderr)
    sys.stdout.write(dumps(render(results)).decode() + "\n")
    return 0
