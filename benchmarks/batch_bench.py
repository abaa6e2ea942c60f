"""``maskserve batch`` measured in one run against what it is built on and what people do without it: the
engine alone (``engine.infer`` on fixed batches, as ``engine_bench.py``), the job in-process (from the first
record to the output in place, the model already loaded), ``transformers.pipeline("fill-mask")`` in a loop,
and a server over HTTP with 16 clients. Then, with ``--memory-model``, the job's RSS over a large file.

    python benchmarks/batch_bench.py build/bench-bert-base --records 2000 --seconds 20 \\
        --memory-model ../shared/models/tiny-random-bert --memory-records 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import loadgen
import workload
from engine_bench import time_calls
from servers import free_port, running, stop_children_on_exit, wait_ready

SRC = Path(__file__).resolve().parents[1] / "src"
HOST = "127.0.0.1"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_job(
    model: str, texts: list[str], workdir: Path, **flags: Any
) -> tuple[float, list[tuple[float, float]]]:
    """The job over ``texts`` in-process: records/s from the first record to the output in place, and the
    process's RSS (seconds, MB) every second meanwhile."""
    from maskserve.config import ModelSettings
    from maskserve.jobs.answers import job_engine
    from maskserve.jobs.records import InputSpec
    from maskserve.jobs.reporting import Reporter
    from maskserve.jobs.runner import Job, process, start

    source = workdir / f"in-{len(texts)}.jsonl"
    source.write_text("".join(json.dumps(t) + "\n" for t in texts), encoding="utf-8")
    output = workdir / f"out-{len(texts)}-{time.monotonic_ns()}.jsonl"
    job = Job(InputSpec(str(source)), output, quiet=True)
    engine = job_engine(ModelSettings(model=model, **flags))
    samples: list[tuple[float, float]] = []
    done = threading.Event()
    started = time.perf_counter()

    def sample() -> None:
        while not done.wait(1.0):
            samples.append((round(time.perf_counter() - started, 1), round(rss_mb(), 1)))

    threading.Thread(target=sample, daemon=True).start()
    asyncio.run(process(job, engine, start(job), Reporter(None, quiet=True)))
    rate = len(texts) / (time.perf_counter() - started)
    done.set()
    return rate, samples


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("model")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="per engine, pipeline and HTTP measurement"
    )
    parser.add_argument("--memory-model", default=None, help="a small model for the large-file run")
    parser.add_argument("--memory-records", type=int, default=200_000)
    args = parser.parse_args()
    stop_children_on_exit()
    from maskserve.config import ModelSettings
    from maskserve.jobs.answers import job_engine

    texts = workload.sentences(args.records, 0, "[MASK]")
    results: dict[str, Any] = {}
    engine = job_engine(ModelSettings(model=args.model))
    for size in (16, 32):
        batches = [texts[i : i + size] for i in range(0, len(texts) - size + 1, size)]
        calls, elapsed = time_calls(engine.infer, batches, args.seconds)
        results[f"engine_alone_batch_{size}"] = round(calls * size / elapsed, 2)
    asyncio.run(engine.aclose())
    with tempfile.TemporaryDirectory() as scratch:
        results["batch_job"] = round(run_job(args.model, texts, Path(scratch))[0], 2)
    print(json.dumps(results), flush=True)

    from transformers import pipeline

    fill_mask = pipeline("fill-mask", model=args.model, tokenizer=args.model, device="cpu")
    calls, elapsed = time_calls(lambda batch: fill_mask(batch[0]), [[t] for t in texts], args.seconds)
    results["pipeline_loop"] = round(calls / elapsed, 2)

    port = free_port()
    url = f"http://{HOST}:{port}"
    cmd = [sys.executable, "-m", "maskserve", "serve", args.model, "--model_name=bert", f"--host={HOST}",
           f"--http_port={port}", "--enable_grpc=false", "--log_level=warning"]  # fmt: skip
    with running(cmd, Path(tempfile.gettempdir()) / "batch-bench-server.log", SRC) as proc:
        wait_ready(proc, url, 900)
        config = loadgen.LoadConfig(url=url, model="bert", concurrency=16, duration=args.seconds, warmup=3)
        results["http_16_clients"] = loadgen.run(config)["sentences_per_s"]
    best = max(results["engine_alone_batch_16"], results["engine_alone_batch_32"])
    results["job_over_engine_alone"] = round(results["batch_job"] / best, 3)
    results["job_over_pipeline"] = round(results["batch_job"] / results["pipeline_loop"], 2)
    results["job_over_http"] = round(results["batch_job"] / results["http_16_clients"], 2)
    print(json.dumps(results), flush=True)

    if args.memory_model:
        many = workload.sentences(args.memory_records, 1, "[MASK]")
        with tempfile.TemporaryDirectory() as scratch:
            rate, samples = run_job(args.memory_model, many, Path(scratch), backend="torch")
        every = max(1, len(samples) // 20)
        memory = {"records": len(many), "records_per_s": round(rate, 1), "rss_mb_over_time": samples[::every]}
        print(json.dumps({"memory_run": memory}))


if __name__ == "__main__":
    main()
