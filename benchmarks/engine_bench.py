"""In-process throughput of maskserve's engine (tokenize + model + logits at the masks), without HTTP.

Times ``engine.infer(texts)`` at each batch size, then ``transformers.pipeline("fill-mask")`` one sentence
at a time on the same model in the same process, and prints the ratio. The pipeline's time includes its
top-5 post-processing, which ``engine.infer`` leaves out (in the server that runs off the model thread).

    python benchmarks/engine_bench.py build/bench-bert-base --backend onnx --quantize int8
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import workload


def load_engine(model: str, options: dict[str, Any]) -> Any:
    from maskserve.config import Settings
    from maskserve.core.repository import load_engine as load

    # Settings ignores unknown fields, so say when a requested option has no field to land in.
    for key in options:
        if key not in Settings.model_fields:
            print(f"warning: this maskserve has no {key!r} setting; it is not applied", file=sys.stderr)
    fields = {k: v for k, v in options.items() if k in Settings.model_fields}
    try:
        settings = Settings(model=model, **fields)
    except Exception as exc:  # an older Settings may reject the values; measure what it can load
        print(f"warning: Settings rejected {fields} ({exc}); loading with model only", file=sys.stderr)
        settings = Settings(model=model)
    return load(settings)


def time_calls(
    call: Callable[[Sequence[str]], object], batches: list[list[str]], seconds: float, workers: int = 1
) -> tuple[int, float]:
    """Run ``call`` over the batches cyclically for about ``seconds`` from ``workers`` threads at once (as
    the server's model workers do); return (calls, elapsed)."""
    call(batches[0])  # warm-up: first-call allocations and lazy initialisation are not throughput
    counts = [0] * workers
    start = time.perf_counter()

    def worker(index: int) -> None:
        while time.perf_counter() - start < seconds:
            call(batches[(counts[index] * workers + index) % len(batches)])
            counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="model directory")
    parser.add_argument(
        "--backend", choices=["torch", "onnx", "openvino"], default=None, help="default: maskserve's"
    )
    parser.add_argument("--quantize", choices=["int8"], default=None, help="default: none")
    parser.add_argument("--batch-sizes", default="1,4,16,32", help="comma-separated (default: 1,4,16,32)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default: 0)")
    parser.add_argument(
        "--onnx-cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "maskserve" / "onnx",
        help="where ONNX exports are kept, not in the model directory (default: ~/.cache/maskserve/onnx)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--no-pipeline", action="store_true", help="measure the engine only")
    parser.add_argument(
        "--workers", type=int, default=1, help="model workers (--model_workers), each a calling thread"
    )
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]

    options: dict[str, Any] = {"backend": args.backend, "quantize": args.quantize}
    if args.workers > 1:
        options["model_workers"] = args.workers
    if args.backend in {"onnx", "openvino"}:
        options["onnx_cache_dir"] = str(args.onnx_cache_dir)
    engine = load_engine(args.model, {k: v for k, v in options.items() if v is not None})
    info = engine.info
    texts = workload.sentences(2048, args.seed, info.mask_token)
    print(f"engine: {info.architecture}, backend {info.backend}, dtype {info.dtype}, mask {info.mask_token}")

    results: dict[str, Any] = {
        "model": args.model,
        "backend": info.backend,
        "dtype": info.dtype,
        "engine": [],
    }
    for size in batch_sizes:
        batches = [texts[i : i + size] for i in range(0, len(texts) - size + 1, size)]
        calls, elapsed = time_calls(engine.infer, batches, args.seconds, args.workers)
        rate = calls * size / elapsed
        results["engine"].append(
            {
                "batch_size": size,
                "sentences_per_s": round(rate, 2),
                "ms_per_batch": round(elapsed * args.workers / calls * 1000, 3),
            }
        )
        print(
            f"engine.infer batch {size:>3}: {rate:8.1f} sentences/s, "
            f"{elapsed * args.workers / calls * 1000:8.2f} ms/batch"
        )

    if not args.no_pipeline:
        compare_with_pipeline(args, texts, results)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def compare_with_pipeline(args: argparse.Namespace, texts: list[str], results: dict[str, Any]) -> None:
    from transformers import pipeline

    fill_mask = pipeline("fill-mask", model=args.model, tokenizer=args.model, device="cpu")
    calls, elapsed = time_calls(lambda batch: fill_mask(batch[0]), [[t] for t in texts], args.seconds)
    pipe_rate = calls / elapsed
    results["pipeline_sentences_per_s"] = round(pipe_rate, 2)
    print(
        f"pipeline, 1 sentence/call: {pipe_rate:8.1f} sentences/s, {elapsed / calls * 1000:8.2f} ms/sentence"
    )
    for row in results["engine"]:
        row["ratio_vs_pipeline"] = round(row["sentences_per_s"] / pipe_rate, 2)
        print(f"engine batch {row['batch_size']:>3} / pipeline: {row['ratio_vs_pipeline']:.2f}x")


if __name__ == "__main__":
    main()
