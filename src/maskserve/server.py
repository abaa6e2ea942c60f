"""Process entry points: load the model, then serve it (or answer one prediction)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from types import FrameType
from typing import Any

from maskserve.config import Settings
from maskserve.domain import FillMaskParams
from maskserve.errors import MaskserveError, ModelLoadError

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
    import uvicorn

    from maskserve.api.http.app import create_app
    from maskserve.core.loader import load_engine

    configure_logging(settings)
    try:
        engine = load_engine(settings)
    except ModelLoadError as exc:
        logger.error("cannot serve the model: %s", exc)
        return 1
    app = create_app(engine)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.http_port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    server = _graceful_server(config)
    try:
        server.run()
    finally:
        engine.close()
    return 0


def predict(settings: Settings, text: str, *, top_k: int, targets: list[str] | None) -> int:
    from maskserve.core.loader import load_engine
    from maskserve.protocols.common import dumps
    from maskserve.protocols.hf import render_hf_response

    configure_logging(settings)
    try:
        engine = load_engine(settings)
        params = FillMaskParams(top_k=top_k, targets=tuple(targets) if targets else None)
        results = asyncio.run(engine.fill_mask([text], params))
    except MaskserveError as exc:
        print(f"maskserve: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ModelLoadError) else 2
    sys.stdout.write(dumps(render_hf_response(results, unwrap=True)).decode() + "\n")
    engine.close()
    return 0
