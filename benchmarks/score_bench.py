"""Sentence scores measured in one run: minicons (the field's reference, in-process, 2 threads) at several
batch sizes, then a maskserve server with its default flags over HTTP (16 clients, one sentence per
request, word_l2r), and plain fill-mask on the same server for the rows it does per second.

    python benchmarks/build_random_model.py --config bert-base-uncased \\
        --tokenizer ../shared/models/tiny-random-bert --out build/bench-bert-base
    python benchmarks/score_bench.py build/bench-bert-base --duration 20

Sentences are ``workload.py``'s (8-24 words), whole for scores, with one mask for fill-mask. A scored token
is one forward row; a fill-mask sentence is one row: rows/s compares the two.
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
import workload
from servers import free_port, running, stop_children_on_exit, wait_ready

SRC = Path(__file__).resolve().parents[1] / "src"
HOST = "127.0.0.1"


def minicons_rate(model: Path, texts: list[str], batch: int, threads: int) -> dict[str, Any]:
    import torch
    from transformers import PreTrainedTokenizerBase

    # minicons 0.3 calls batch_encode_plus, which transformers 5 removed; __call__ is what it became.
    PreTrainedTokenizerBase.batch_encode_plus = PreTrainedTokenizerBase.__call__  # type: ignore[attr-defined]
    from minicons.scorer import MaskedLMScorer

    torch.set_num_threads(threads)
    scorer = MaskedLMScorer(str(model), "cpu")
    scorer.sequence_score(texts[:batch], reduction=lambda x: x.sum(0).item(), PLL_metric="within_word_l2r")
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        scorer.sequence_score(
            texts[start : start + batch], reduction=lambda x: x.sum(0).item(), PLL_metric="within_word_l2r"
        )
    seconds = time.perf_counter() - started
    return {"batch": batch, "sentences": len(texts), "sentences_per_s": round(len(texts) / seconds, 2)}


async def score_load(
    url: str, texts: list[str], clients: int, duration: float, warmup: float
) -> dict[str, Any]:
    """Closed-loop clients, one sentence per request, for ``warmup`` + ``duration`` seconds."""
    counts = {"requests": 0, "rows": 0, "errors": 0}
    record_from = time.monotonic() + warmup
    stop_at = record_from + duration

    async def client(index: int, http: httpx.AsyncClient) -> None:
        turn = index
        while time.monotonic() < stop_at:
            r = await http.post("/models/bert/score", json={"inputs": texts[turn % len(texts)]})
            turn += clients
            if time.monotonic() < record_from:
                continue
            if r.status_code != 200:
                counts["errors"] += 1
                continue
            counts["requests"] += 1
            counts["rows"] += r.json()["num_tokens"]

    async with httpx.AsyncClient(base_url=url, timeout=300, headers={"x-use-cache": "false"}) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    return {
        "clients": clients,
        "sentences_per_s": round(counts["requests"] / duration, 2),
        "rows_per_s": round(counts["rows"] / duration, 1),
        "errors": counts["errors"],
    }


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--minicons-sentences", type=int, default=32)
    parser.add_argument("--minicons-batches", default="1,4,16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--server-args", default="", help="extra maskserve flags")
    parser.add_argument("--logs", type=Path, default=Path("build/score-bench"))
    args = parser.parse_args()
    stop_children_on_exit()
    args.logs.mkdir(parents=True, exist_ok=True)
    texts = workload.plain_sentences(256, seed=0)
    results: dict[str, Any] = {"minicons": []}
    for batch in (int(b) for b in args.minicons_batches.split(",")):
        row = minicons_rate(args.model, texts[: args.minicons_sentences], batch, args.threads)
        print(json.dumps({"minicons": row}), flush=True)
        results["minicons"].append(row)
    port = free_port()
    url = f"http://{HOST}:{port}"
    cmd = [
        sys.executable, "-m", "maskserve", "serve", str(args.model), "--model_name=bert", f"--host={HOST}",
        f"--http_port={port}", "--enable_grpc=false", "--log_level=warning", *args.server_args.split(),
    ]  # fmt: skip
    with running(cmd, args.logs / "server.log", SRC) as proc:
        wait_ready(proc, url, 900)
        results["maskserve_scores"] = asyncio.run(
            score_load(url, texts, args.clients, args.duration, args.warmup)
        )
        print(json.dumps({"maskserve_scores": results["maskserve_scores"]}), flush=True)
        config = loadgen.LoadConfig(
            url=url, model="bert", protocol="hf", concurrency=args.clients, duration=args.duration,
            warmup=args.warmup,
        )  # fmt: skip
        fill = loadgen.run(config)
        results["maskserve_fill_mask"] = {
            "sentences_per_s": fill["sentences_per_s"],
            "rows_per_s": fill["sentences_per_s"],
        }
        print(json.dumps({"maskserve_fill_mask": results["maskserve_fill_mask"]}), flush=True)
    best = max(r["sentences_per_s"] for r in results["minicons"])
    scores = results["maskserve_scores"]
    versus = scores["sentences_per_s"] / best
    fill_rows = results["maskserve_fill_mask"]["rows_per_s"]
    rows = scores["rows_per_s"] / fill_rows
    print(f"scores: {scores['sentences_per_s']} sentences/s = {versus:.2f}x minicons' best ({best}/s)")
    print(f"rows/s {scores['rows_per_s']} = {rows:.2f}x fill-mask's {fill_rows}")


if __name__ == "__main__":
    main()
