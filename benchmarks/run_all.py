"""One benchmark run: maskserve per config and the naive pipeline server, over HTTP, in one markdown table.

First benchmarks/pipeline_server.py, then for each config (torch, onnx, torch-int8, onnx-int8, each
optionally ``@N`` for N model workers, e.g. ``onnx-int8@2``) ``python -m maskserve serve``: each starts on
a free loopback port, and once ready loadgen (imported, in this process) runs at each client count, with
the health probe at the highest; SIGTERM stops the server.
After each server stops, the same config's engine runs in a fresh process with no HTTP at all
(``engine_bench.py``, batches of 16): the model alone, so the table shows what serving costs on top of it.
The table gives each run's throughput against the pipeline at the same client count, against the model
alone and against its FLOP ceiling (``ceiling.py``: this machine's float32 or int8 GEMM rate, measured
first, divided by the model's FLOPs per sentence at the workload's mean length). With
``--agreement-model``, the int8 configs' top-1/top-5 agreement with fp32 follows the table
(``int8_agreement.py``): measured on that model, which should have real weights, since on the random-weight
speed model agreement means nothing.

    python benchmarks/build_random_model.py --config bert-base-uncased \\
        --tokenizer ../shared/models/tiny-random-bert --out build/bench-bert-base
    python benchmarks/run_all.py --model build/bench-bert-base --duration 20 --out results.json \\
        --agreement-model ../shared/models/minilm-l6-mlm-demo
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

import ceiling
import loadgen
import servers
from servers import HOST

BENCH_DIR = Path(__file__).resolve().parent
REPO_SRC = BENCH_DIR.parent / "src"
PLATFORMS = {"torch": "pytorch_transformers", "onnx": "onnxruntime_onnx", "openvino": "openvino"}
PIPELINE = "pipeline"


def split_config(config: str, default_workers: int) -> tuple[str, str, int]:
    """``onnx-int8@2`` -> ("onnx", "int8", 2); without ``@N`` the workers are ``--model-workers``."""
    name, _, workers = config.partition("@")
    backend, _, variant = name.partition("-")
    return backend, variant, int(workers) if workers else default_workers


def check_backend(url: str, name: str, config: str, log_path: Path) -> None:
    """Refuse to label a run with a backend the server did not run (an older maskserve ignores flags)."""
    backend, quantize, _ = split_config(config, 1)
    ignored = [line for line in log_path.read_text(errors="replace").splitlines() if "unknown flag" in line]
    if ignored:
        raise RuntimeError("the server ignored flags: " + "; ".join(ignored))
    platform = httpx.get(f"{url}/v2/models/{name}", timeout=10).json().get("platform")
    if platform != PLATFORMS[backend]:
        raise RuntimeError(f"asked for --backend {backend} but the server reports platform {platform!r}")
    if quantize and quantize not in log_path.read_text(errors="replace"):
        # Not visible over HTTP; the backends name it in their load line, so its absence is suspect.
        print(
            f"warning: --quantize {quantize} is not mentioned in the server log {log_path}", file=sys.stderr
        )


def maskserve_settings() -> set[str]:
    """The settings this checkout's maskserve has, so newer flags are passed only when they exist."""
    sys.path.insert(0, str(REPO_SRC))
    try:
        from maskserve.config import Settings
    except ImportError:
        return set()
    return set(Settings.model_fields)


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def measure(
    label: str,
    command_for: Callable[[int], list[str]],
    is_maskserve: bool,
    args: argparse.Namespace,
    shape: ceiling.ModelShape,
    log_dir: Path,
) -> list[dict[str, Any]]:
    port = servers.free_port()
    cmd = command_for(port)
    url = f"http://{HOST}:{port}"
    log_path = log_dir / f"{label}.log"
    command = shlex.join(cmd)
    print(f"\n[{label}] PYTHONPATH={REPO_SRC} {command}\n[{label}] log: {log_path}", flush=True)
    runs: list[dict[str, Any]] = []
    try:
        with servers.running(cmd, log_path, REPO_SRC) as proc:
            servers.wait_ready(proc, url, args.ready_timeout)
            if is_maskserve:
                check_backend(url, args.model_name, label, log_path)
            for clients in args.clients:
                cfg = loadgen.LoadConfig(
                    url=url,
                    model=args.model_name,
                    protocol=args.protocol,
                    concurrency=clients,
                    duration=args.duration,
                    sentences_per_request=args.sentences_per_request,
                    seed=args.seed,
                    mask=shape.mask_token,
                    probe_health=clients == max(args.clients),
                    warmup=args.warmup,
                )
                print(f"[{label}] {loadgen.command_line(cfg)}", flush=True)
                report = loadgen.run(cfg)
                print(f"[{label}] {loadgen.human_line(report)}", flush=True)
                runs.append(
                    {"config": label, "clients": clients, "server_command": command, "report": report}
                )
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"[{label}] SKIPPED: {exc}\n{tail(log_path)}", file=sys.stderr, flush=True)
        runs.append({"config": label, "server_command": command, "error": str(exc)})
    return runs


def model_alone(config: str, args: argparse.Namespace, log_dir: Path) -> float | None:
    """The config's engine in a fresh process, batches of 16, no HTTP: sentences/s, or None on failure."""
    backend, variant, workers = split_config(config, args.model_workers)
    out = log_dir / f"{config}-alone.json"
    cmd = [sys.executable, str(BENCH_DIR / "engine_bench.py"), args.model, "--backend", backend]
    cmd += ["--quantize", variant] if variant else []
    cmd += ["--batch-sizes", "16", "--seconds", str(args.alone_seconds), "--no-pipeline", "--out", str(out)]
    cmd += ["--seed", str(args.seed), "--onnx-cache-dir", str(args.onnx_cache_dir)]
    cmd += ["--workers", str(workers)]
    print(f"[{config}] model alone: {shlex.join(cmd)}", flush=True)
    with (log_dir / f"{config}-alone.log").open("wb") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        print(f"[{config}] model alone FAILED\n{tail(log_dir / f'{config}-alone.log')}", file=sys.stderr)
        return None
    rate = float(json.loads(out.read_text(encoding="utf-8"))["engine"][0]["sentences_per_s"])
    print(f"[{config}] model alone: {rate:.1f} sentences/s", flush=True)
    return rate


def int8_agreement(args: argparse.Namespace) -> str | None:
    """``int8_agreement.py``'s table for the backends of the int8 configs, or None if it failed."""
    backends = sorted({split_config(c, 1)[0] for c in args.configs if split_config(c, 1)[1] == "int8"})
    if not backends:
        return None
    cmd = [sys.executable, str(BENCH_DIR / "int8_agreement.py"), str(args.agreement_model)]
    cmd += ["--sentences", str(args.agreement_sentences), "--backends", ",".join(backends)]
    cmd += ["--onnx-cache-dir", str(args.onnx_cache_dir)]
    print(f"\nint8 agreement: {shlex.join(cmd)}", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"int8 agreement FAILED\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    print(done.stdout, flush=True)
    return done.stdout


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def table(
    runs: list[dict[str, Any]], ceilings: dict[str, float | None], alone: dict[str, float | None]
) -> str:
    baseline = {
        r["clients"]: r["report"]["sentences_per_s"]
        for r in runs
        if r["config"] == PIPELINE and "report" in r
    }
    rows = [
        "| config | clients | sentences/s | p50 ms | p99 ms | health p99 ms | × pipeline | model alone "
        "| of model alone | of FLOP ceiling | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        if "report" not in run:
            rows.append(f"| {run['config']} | – | failed: {run['error']} | | | | | | | | |")
            continue
        report = run["report"]
        rate = report["sentences_per_s"]
        base = baseline.get(run["clients"])
        solo = alone.get(run["config"])
        roof = ceilings[split_config(run["config"], 1)[1] or "float32"]
        health = report["health"]["p99_ms"] if report["health"] else None
        errors = ", ".join(f"{k}: {v}" for k, v in report["errors"].items()) or "0"
        rows.append(
            f"| {run['config']} | {run['clients']} | {rate:.1f} | {_fmt(report['latency_ms']['p50'])} "
            f"| {_fmt(report['latency_ms']['p99'])} | {_fmt(health)} "
            f"| {_fmt(rate / base if base else None, '.2f')} | {_fmt(solo)} "
            f"| {_fmt(rate / solo if solo else None, '.0%')} | {_fmt(rate / roof if roof else None, '.1%')} "
            f"| {errors} |"
        )
    return "\n".join(rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory")
    parser.add_argument("--model-name", default="bert", help="served model name (default: bert)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run (default: 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="uncounted seconds per run (default: 3)")
    parser.add_argument("--out", type=Path, default=Path("results.json"), help="default: results.json")
    parser.add_argument(
        "--configs",
        default="torch,onnx,torch-int8,onnx-int8",
        help="BACKEND[-int8][@WORKERS],... (default: torch,onnx,torch-int8,onnx-int8)",
    )
    parser.add_argument("--clients", default="1,16", help="client counts (default: 1,16)")
    parser.add_argument(
        "--protocol", choices=["v1", "v2", "hf"], default="hf", help="default: hf, as the baseline"
    )
    parser.add_argument("--sentences-per-request", type=int, default=1, help="default: 1")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default: 0)")
    parser.add_argument(
        "--ready-timeout", type=float, default=900.0, help="seconds to wait for a server (default: 900)"
    )
    parser.add_argument("--server-args", default="", help='extra maskserve flags, e.g. "--max_batch_size 32"')
    parser.add_argument(
        "--onnx-cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "maskserve" / "onnx",
        help="where ONNX exports are kept between runs (default: ~/.cache/maskserve/onnx)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the pipeline server")
    parser.add_argument(
        "--model-workers",
        type=int,
        default=1,
        help="maskserve's --model_workers for configs without @N (also the model-alone run)",
    )
    parser.add_argument(
        "--alone-seconds",
        type=float,
        default=8.0,
        help="seconds of the model-alone measurement per config; 0 skips it (default: 8)",
    )
    parser.add_argument(
        "--agreement-model",
        type=Path,
        help="a model with real weights: after the table, int8 agreement with fp32 on it (int8 configs)",
    )
    parser.add_argument("--agreement-sentences", type=int, default=400, help="default: 400")
    args = parser.parse_args()
    args.clients = sorted({int(c) for c in args.clients.split(",") if c.strip()})
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for config in args.configs:
        try:
            backend, variant, workers = split_config(config, args.model_workers)
        except ValueError:
            backend, variant, workers = "", "", 0
        if backend not in PLATFORMS or variant not in {"", "int8"} or workers < 1:
            parser.error(
                f"unknown config {config!r}: use torch, onnx, openvino, torch-int8 or onnx-int8 [@N]"
            )
    if args.protocol != "hf" and not args.no_baseline:
        parser.error("the pipeline baseline speaks the hf protocol only; add --no-baseline for v1/v2")
    return args


def main() -> None:
    args = parse_args()
    servers.stop_children_on_exit()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")

    shape = ceiling.model_shape(args.model, args.seed)
    flops = ceiling.flops_per_sentence(shape)
    rows = round(shape.mean_tokens)
    # Measured before any server starts, so the GEMMs have the machine to itself.
    single = ceiling.gemm_flops_per_s(rows, shape.hidden, shape.intermediate)
    batched = ceiling.gemm_flops_per_s(16 * rows, shape.hidden, shape.intermediate)
    int8 = ceiling.int8_gemm_ops_per_s(16 * rows, shape.hidden, shape.intermediate)
    ceilings = {"float32": batched / flops, "int8": int8 / flops if int8 else None}
    weight = f"{shape.hidden}x{shape.intermediate}"
    gemm = f"{16 * rows}x{shape.hidden} @ {weight}"
    print(
        f"model: hidden {shape.hidden}, layers {shape.layers}, intermediate {shape.intermediate}, "
        f"vocab {shape.vocab}; workload mean {shape.mean_tokens:.1f} tokens, {flops / 1e9:.3f} GFLOP\n"
        f"float32 GEMM {rows}x{shape.hidden} @ {weight}: {single / 1e9:.1f} GFLOP/s; "
        f"{gemm}: {batched / 1e9:.1f} GFLOP/s -> float32 ceiling {ceilings['float32']:.1f} sentences/s"
    )
    if int8:
        print(
            f"int8 GEMM {gemm} (ONNX Runtime, dynamic): {int8 / 1e9:.1f} GOP/s -> int8 ceiling "
            f"{int8 / flops:.1f} sentences/s ({int8 / batched:.2f}x float32)"
        )

    log_dir = Path(tempfile.mkdtemp(prefix="maskserve-bench-"))
    runs: list[dict[str, Any]] = []
    alone: dict[str, float | None] = {}
    if not args.no_baseline:

        def pipeline_server(port: int) -> list[str]:
            script = str(BENCH_DIR / "pipeline_server.py")
            names = ["--model", args.model, "--name", args.model_name]
            return [sys.executable, script, *names, "--host", HOST, "--port", str(port)]

        runs += measure(PIPELINE, pipeline_server, False, args, shape, log_dir)
    settings = maskserve_settings()
    for config in args.configs:
        backend, variant, workers = split_config(config, args.model_workers)
        flags = ["--backend", backend, *(["--quantize", variant] if variant else [])]
        flags += ["--model_workers", str(workers)] if workers > 1 else []
        if backend in {"onnx", "openvino"} and "onnx_cache_dir" in settings:
            # Keep exports out of the model directory, which may be shared or read-only.
            flags += ["--onnx_cache_dir", str(args.onnx_cache_dir)]

        def maskserve(port: int, flags: list[str] = flags) -> list[str]:
            cmd = [sys.executable, "-m", "maskserve", "serve", args.model, "--model_name", args.model_name]
            cmd += ["--host", HOST, "--http_port", str(port)]
            if "grpc_port" in settings:  # the default 8081 may be taken by another server
                cmd += ["--grpc_port", str(servers.free_port())]
            return [*cmd, *flags, *shlex.split(args.server_args)]

        runs += measure(config, maskserve, True, args, shape, log_dir)
        alone[config] = model_alone(config, args, log_dir) if args.alone_seconds > 0 else None

    markdown = table(runs, ceilings, alone)
    print(f"\n{markdown}")
    agreement = int8_agreement(args) if args.agreement_model else None
    result = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "cpus": os.cpu_count(),
        "model": args.model,
        "shape": asdict(shape),
        "flops_per_sentence": flops,
        "gemm_flops_per_s": {f"{rows}x{shape.hidden}x{shape.intermediate}": single, "batched_x16": batched},
        "int8_gemm_ops_per_s": int8,
        "ceiling_sentences_per_s": ceilings,
        "model_alone_sentences_per_s": alone,
        "runs": runs,
        "table": markdown,
        "int8_agreement": agreement,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults: {args.out}; server logs: {log_dir}")


if __name__ == "__main__":
    main()
