"""Process entry points: load the model, then serve it (or answer one prediction)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from maskserve.config import Settings
from maskserve.domain import FillMaskParams, InputPredictions
from maskserve.errors import MaskserveError, ModelLoadError

if TYPE_CHECKING:
    from maskserve.core.engine import Engine

logger = logging.getLogger("maskserve")


def _graceful_server(config: Any) -> Any:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Uvicorn re-raises SIGTERM after draining, so the process would die by the signal; a drained
        server should exit 0 instead."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return GracefulServer(config)


def configure_logging(settings: Settings) -> None:
    logging.getLogger().setLevel(settings.log_level.upper())


def serve(settings: Settings) -> int:
    from maskserve.core.loader import load_engine

    configure_logging(settings)
    try:
        engine = load_engine(settings)
    except ModelLoadError as exc:
        logger.error("cannot serve the model: %s", exc)
        return 1
    asyncio.run(_serve(settings, engine))
    return 0


async def _serve(settings: Settings, engine: Engine) -> None:
    """HTTP and gRPC in one event loop: the engine's batcher belongs to the loop that runs it."""
    import uvicorn

    from maskserve.api.http.app import create_app

    config = uvicorn.Config(
        create_app(engine),
        host=settings.host,
        port=settings.http_port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    http = _graceful_server(config)
    grpc_server = None
    if settings.enable_grpc:
        from maskserve.api.grpc.service import start_grpc_server

        grpc_server, port = await start_grpc_server(
            engine,
            host=settings.host,
            port=settings.grpc_port,
            max_send_message_length=settings.grpc_max_send_message_length,
            max_receive_message_length=settings.grpc_max_receive_message_length,
        )
        logger.info("gRPC (Open Inference Protocol) on %s:%d", settings.host, port)
    try:
        await http.serve()
    finally:
        if grpc_server is not None:
            await grpc_server.stop(30)
        await engine.aclose()


def predict(settings: Settings, text: str, *, top_k: int, targets: list[str] | None) -> int:
    from maskserve.core.loader import load_engine
    from maskserve.protocols.common import dumps
    from maskserve.protocols.hf import render_hf_response

    configure_logging(settings)
    params = FillMaskParams(top_k=top_k, targets=tuple(targets) if targets else None)

    async def run() -> list[InputPredictions]:
        engine = load_engine(settings)
        try:
            return await engine.fill_mask([text], params)
        finally:
            await engine.aclose()

    try:
        results = asyncio.run(run())
    except MaskserveError as exc:
        print(f"maskserve: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ModelLoadError) else 2
    sys.stdout.write(dumps(render_hf_response(results, unwrap=True)).decode() + "\n")
    return 0
