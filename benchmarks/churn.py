"""Many models under churn: one server, two models and room for one, traffic on both, and a model unloaded
and loaded again through the repository API, cycle after cycle. Bounded by cycles, on loopback.

    python benchmarks/churn.py ../shared/models/minilm-l6-mlm-demo ../shared/models/tiny-random-bert \\
        --backends torch,onnx --cycles 200

Per backend it prints the server's RSS (VmRSS) after cycles 10, 100 and 200 (and every 10th), the growth
from cycle 10 to the last, and the traffic's answers by status: the server runs ``--max_models 1``, so every
load of one model evicts the other (each client's request to an evicted model waits for it: V1 and the HF
API with ``x-wait-for-model``), and no answer should be a 5xx. Every 200 answer is checked against the
model's own answer to the same text, taken once before the churn starts.
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

from servers import free_port, running, stop_children_on_exit, wait_ready

SRC = Path(__file__).resolve().parents[1] / "src"
HOST = "127.0.0.1"
TEXTS = {"a": "I drink [MASK] every morning.", "b": "the [MASK] sat on the mat ."}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def traffic(url: str, stop: asyncio.Event, clients: int, expected: dict[str, Any]) -> dict[str, int]:
    """Clients alternating between the two models and two protocols until ``stop``; answers by status."""
    counts: dict[str, int] = {}

    async def one(client: httpx.AsyncClient, index: int) -> None:
        turn = index
        while not stop.is_set():
            name = "ab"[turn % 2]
            if (turn // 2) % 2:
                r = await client.post(
                    f"/models/{name}", json={"inputs": TEXTS[name]}, headers={"x-wait-for-model": "true"}
                )
                ok = r.status_code == 200 and r.json()[0]["token"] == expected[name]["hf"]
            else:
                r = await client.post(f"/v1/models/{name}:predict", json={"instances": [TEXTS[name]]})
                ok = r.status_code == 200 and r.json()["predictions"] == expected[name]["v1"]
            key = str(r.status_code) if r.status_code != 200 or ok else "200-wrong"
            counts[key] = counts.get(key, 0) + 1
            turn += 1

    headers = {"x-use-cache": "false"}
    async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers) as client:
        await asyncio.gather(*(one(client, i) for i in range(clients)))
    return counts


async def churn(url: str, pid: int, cycles: int, clients: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        expected: dict[str, Any] = {}
        for name in "ab":
            await client.post(f"/v2/repository/models/{name}/load")
            hf = (await client.post(f"/models/{name}", json={"inputs": TEXTS[name]})).json()
            v1 = (await client.post(f"/v1/models/{name}:predict", json={"instances": [TEXTS[name]]})).json()
            expected[name] = {"hf": hf[0]["token"], "v1": v1["predictions"]}
        stop = asyncio.Event()
        load = asyncio.ensure_future(traffic(url, stop, clients, expected))
        rss: dict[int, float] = {}
        started = time.perf_counter()
        for cycle in range(1, cycles + 1):
            name = "ab"[cycle % 2]
            (await client.post(f"/v2/repository/models/{name}/unload")).raise_for_status()
            (await client.post(f"/v2/repository/models/{name}/load")).raise_for_status()
            if cycle % 10 == 0 or cycle == cycles:
                rss[cycle] = round(rss_mb(pid), 1)
                print(f"  cycle {cycle}: RSS {rss[cycle]} MB", file=sys.stderr, flush=True)
        stop.set()
        counts = await load
    first = rss[min(rss)]
    return {
        "cycles": cycles,
        "seconds": round(time.perf_counter() - started, 1),
        "rss_mb": rss,
        "growth_from_cycle_10": round(rss[cycles] / first - 1, 4),
        "answers": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_a", type=Path, help="served as a (its text: 'I drink [MASK] every morning.')")
    parser.add_argument("model_b", type=Path, help="served as b (a WordPiece model, [MASK])")
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--logs", type=Path, default=Path("build/churn-bench"))
    args = parser.parse_args()
    stop_children_on_exit()
    args.logs.mkdir(parents=True, exist_ok=True)
    for backend in args.backends.split(","):
        port = free_port()
        url = f"http://{HOST}:{port}"
        cmd = [
            sys.executable, "-m", "maskserve", "serve", f"--host={HOST}", f"--http_port={port}",
            "--enable_grpc=false", f"--backend={backend}", "--enable_repository_api=true", "--max_models=1",
            "--max_wait_for_model_s=300", "--log_level=warning",
            f"--model=a={args.model_a}", f"--model=b={args.model_b}",
        ]  # fmt: skip
        with running(cmd, args.logs / f"churn-{backend}.log", SRC) as proc:
            wait_ready(proc, url, 900)
            result = asyncio.run(churn(url, proc.pid, args.cycles, args.clients))
        print(json.dumps({"backend": backend, **result}), flush=True)


if __name__ == "__main__":
    main()
