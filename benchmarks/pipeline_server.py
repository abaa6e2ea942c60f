"""Baseline: ``transformers.pipeline("fill-mask")`` behind the Hugging Face route, served the naive way.

One request at a time runs the pipeline on one worker thread, with no cross-request batching, so loadgen
can measure the plain pipeline over HTTP beside maskserve:

    python benchmarks/pipeline_server.py --model build/bench-bert-base --port 8090
    python benchmarks/loadgen.py --url http://127.0.0.1:8090 --model bert --protocol hf --concurrency 16

Routes: ``POST /models/{name}`` ({"inputs": text or [texts], "parameters": {"top_k": k}}) and
``GET /v2/health/ready``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_app(model_dir: str, name: str) -> FastAPI:
    from transformers import pipeline

    fill_mask = pipeline("fill-mask", model=model_dir, tokenizer=model_dir, device="cpu")
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline")
    app = FastAPI()

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/models/{model_id:path}")
    async def predict(model_id: str, request: Request) -> JSONResponse:
        if model_id != name:
            return JSONResponse({"error": f"Model {model_id} not found"}, status_code=404)
        try:
            body = json.loads(await request.body())
            inputs = body["inputs"]
            top_k = int((body.get("parameters") or {}).get("top_k", 5))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)

        def run() -> Any:
            return fill_mask(inputs, top_k=top_k)

        try:
            result = await asyncio.get_running_loop().run_in_executor(worker, run)
        except Exception as exc:  # the pipeline's errors (no mask token, ...) are the client's
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(result)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory")
    parser.add_argument("--name", default="bert", help="served model name (default: bert)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="HTTP port (default: 8090)")
    args = parser.parse_args()

    import uvicorn

    uvicorn.run(
        create_app(args.model, args.name),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
