"""Many models in one server, measured in one run: memory per loaded model (torch and ONNX), time to load
on request, and the throughput of two models under load at once against one model alone.

    python benchmarks/build_random_model.py --config bert-base-uncased \\
        --tokenizer ../shared/models/tiny-random-bert --out build/bench-bert-base
    python benchmarks/repository_bench.py build/bench-bert-base --duration 10

Every server is a real ``maskserve serve`` on loopback, serving the same folder under the names a, b and c
(three models as far as the server knows: three engines, three copies of the weights).
- memory: the server's RSS (VmRSS of its process) once ready with 0, 1, 2 and 3 models loaded;
- load time: model b requested while a is loaded and --max_models is 1: the ``estimated_time`` the first
  HF request is told, and the wall time from it until b serves (a is unloaded first);
- throughput: 16 clients on model a alone, then 8 clients on a and 8 on b at the same time, same server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

import loadgen
from servers import free_port, running, stop_children_on_exit, wait_ready

SRC = Path(__file__).resolve().parents[1] / "src"
HOST = "127.0.0.1"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def serve_cmd(model: Path, port: int, backend: str, names: str, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "maskserve", "serve", f"--host={HOST}", f"--http_port={port}",
        "--enable_grpc=false", f"--backend={backend}", "--enable_repository_api=true",
        "--log_level=warning", *[f"--model={n}={model}" for n in names], *extra,
    ]  # fmt: skip


def memory(model: Path, backend: str, logs: Path) -> dict[str, Any]:
    """The server's RSS once ready with 0, 1, 2 and 3 models loaded (a server each)."""
    rss = []
    for count in range(4):
        port = free_port()
        url = f"http://{HOST}:{port}"
        # No model: a server that would only load allowed Hub ids on request.
        extra = [] if count else ["--hub_models=none/*"]
        cmd = serve_cmd(model, port, backend, "abc"[:count], extra)
        with running(cmd, logs / f"memory-{backend}-{count}.log", SRC) as proc:
            wait_ready(proc, url, 900)
            if count:
                httpx.post(f"{url}/models/a", json={"inputs": "a [MASK] ."}, timeout=60).raise_for_status()
            time.sleep(2)
            rss.append(round(rss_mb(proc.pid)))
    return {"backend": backend, "rss_mb_with_0_1_2_3_models": rss}


def load_on_request(model: Path, backend: str, logs: Path) -> dict[str, Any]:
    """a loaded at start, b on request (unloading a, with --max_models 1): what the first HF request is told,
    and how long the load takes from that request to b serving."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    with running(
        serve_cmd(model, port, backend, "ab", ["--max_models=1"]), logs / f"load-{backend}.log", SRC
    ) as proc:
        wait_ready(proc, url, 900)
        started = time.perf_counter()
        first = httpx.post(f"{url}/models/b", json={"inputs": "a [MASK] ."}, timeout=60)
        httpx.post(f"{url}/v2/repository/models/b/load", timeout=900).raise_for_status()
        took = time.perf_counter() - started
        answer = httpx.post(f"{url}/models/b", json={"inputs": "a [MASK] ."}, timeout=60)
    return {
        "backend": backend,
        "first_answer": first.status_code,
        "estimated_time_s": first.json().get("estimated_time"),
        "load_on_request_s": round(took, 2),
        "then": answer.status_code,
    }


def throughput(model: Path, backend: str, log: Path, duration: float, warmup: float) -> dict[str, Any]:
    port = free_port()
    url = f"http://{HOST}:{port}"
    with running(serve_cmd(model, port, backend, "ab", []), log, SRC) as proc:
        wait_ready(proc, url, 900)

        def config(name: str, clients: int) -> loadgen.LoadConfig:
            return loadgen.LoadConfig(
                url=url, model=name, protocol="hf", concurrency=clients, duration=duration, warmup=warmup
            )

        alone = loadgen.run(config("a", 16))

        async def both() -> list[dict[str, Any]]:
            return list(
                await asyncio.gather(loadgen.run_load(config("a", 8)), loadgen.run_load(config("b", 8)))
            )

        together = asyncio.run(both())
    return {
        "backend": backend,
        "a_alone_16_clients": {
            "sentences_per_s": alone["sentences_per_s"],
            "p50_ms": alone["latency_ms"]["p50"],
        },
        "a_and_b_8_clients_each": [
            {"model": m, "sentences_per_s": r["sentences_per_s"], "p50_ms": r["latency_ms"]["p50"]}
            for m, r in zip("ab", together, strict=True)
        ],
        "together_sentences_per_s": round(sum(r["sentences_per_s"] for r in together), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--logs", type=Path, default=Path("build/repository-bench"))
    parser.add_argument("--parts", default="memory,load,throughput", help="which measurements to run")
    args = parser.parse_args()
    stop_children_on_exit()
    args.logs.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    for backend in args.backends.split(","):
        if "memory" in parts:
            print(json.dumps(memory(args.model, backend, args.logs)), flush=True)
        if "load" in parts:
            print(json.dumps(load_on_request(args.model, backend, args.logs)), flush=True)
        if "throughput" in parts:
            log = args.logs / f"throughput-{backend}.log"
            print(json.dumps(throughput(args.model, backend, log, args.duration, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
