"""One benchmark run: maskserve per config and the naive pipeline server, over HTTP, in one markdown table.

First benchmarks/pipeline_server.py, then for each config (torch, onnx, torch-int8, onnx-int8)
``python -m maskserve serve``: each starts on a free loopback port, and once ready loadgen (imported, in
this process) runs at each client count, with the health probe at the highest; SIGTERM stops the server.
The table gives each run's throughput against the pipeline at the same client count and against a FLOP
ceiling: this machine's float32 GEMM rate, measured first, divided by the model's FLOPs per sentence at
the workload's mean length.

    python benchmarks/build_random_model.py --config bert-base-uncased \\
        --tokenizer /work/shared/models/tiny-random-bert --out /tmp/bench-bert-base
    python benchmarks/run_all.py --model /tmp/bench-bert-base --duration 20 --out results.json
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

import loadgen
import workload

BENCH_DIR = Path(__file__).resolve().parent
REPO_SRC = BENCH_DIR.parent / "src"
HOST = "127.0.0.1"
PLATFORMS = {"torch": "pytorch_transformers", "onnx": "onnxruntime_onnx"}
PIPELINE = "pipeline"
_children: list[subprocess.Popen[bytes]] = []


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    mask_token: str
    mean_tokens: float


def model_shape(model_dir: str, seed: int) -> ModelShape:
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    hidden = int(config.hidden_size)
    # DistilBERT calls the feed-forward width hidden_dim.
    intermediate = (
        getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None) or 4 * hidden
    )
    texts = workload.sentences(loadgen.POOL_REQUESTS, seed, str(tokenizer.mask_token))
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    return ModelShape(
        hidden=hidden,
        layers=int(config.num_hidden_layers),
        intermediate=int(intermediate),
        vocab=int(config.vocab_size),
        mask_token=str(tokenizer.mask_token),
        mean_tokens=statistics.mean(lengths),
    )


def flops_per_sentence(shape: ModelShape) -> float:
    """Encoder matmuls (Q, K, V, output: 4 H^2; feed-forward: 2 H I) and attention (QK^T and AV: 4 T^2 H)
    in every layer, plus a BERT-style head at the one mask (transform H^2, decoder H V)."""
    t, h = shape.mean_tokens, shape.hidden
    encoder = 2 * (4 * h * h + 2 * h * shape.intermediate) * t + 4 * t * t * h
    return shape.layers * encoder + 2 * (h * h + h * shape.vocab)


def gemm_flops_per_s(m: int, k: int, n: int, trials: int = 3, seconds: float = 0.4) -> float:
    """Best of short trials on all cores and on one: a peak rate, robust to other work briefly taking a
    core (small GEMMs on a busy machine can be many times slower threaded than on one thread)."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    threads = torch.get_num_threads()
    best = 0.0
    try:
        with torch.inference_mode():
            for count in sorted({threads, 1}, reverse=True):
                torch.set_num_threads(count)
                for _ in range(5):
                    torch.matmul(a, b, out=out)
                for _ in range(trials):
                    calls = 0
                    start = time.perf_counter()
                    while (elapsed := time.perf_counter() - start) < seconds:
                        torch.matmul(a, b, out=out)
                        calls += 1
                    best = max(best, 2 * m * k * n * calls / elapsed)
    finally:
        torch.set_num_threads(threads)
    return best


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook (Linux) so a server gets SIGTERM even if this process is SIGKILLed."""
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, in the parent: the hook runs between fork and exec and should do nothing but the call.
    prctl, pr_set_pdeathsig, sigterm = ctypes.CDLL(None, use_errno=True).prctl, 1, int(signal.SIGTERM)
    return lambda: prctl(pr_set_pdeathsig, sigterm)


def _stop(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM (the server drains and exits), then SIGKILL whatever is left after ``grace`` seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _on_signal(signum: int, _frame: object) -> None:
    # Raising here would surface inside loadgen's event loop (wrapped in exception groups); stop the
    # servers directly and leave at once instead.
    _stop(list(_children), grace=10)
    os._exit(128 + signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(cmd: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ)
    if REPO_SRC.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_SRC), env.get("PYTHONPATH")) if p)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches only this script, which then stops the server itself
            preexec_fn=_die_with_parent(),  # noqa: PLW1509
        )
    _children.append(proc)
    try:
        yield proc
    finally:
        _stop([proc], grace=30)
        _children.remove(proc)


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server was not ready after {timeout:.0f}s")


def check_backend(url: str, name: str, config: str, log_path: Path) -> None:
    """Refuse to label a run with a backend the server did not run (an older maskserve ignores flags)."""
    backend, _, quantize = config.partition("-")
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
    shape: ModelShape,
    log_dir: Path,
) -> list[dict[str, Any]]:
    port = free_port()
    cmd = command_for(port)
    url = f"http://{HOST}:{port}"
    log_path = log_dir / f"{label}.log"
    command = shlex.join(cmd)
    print(f"\n[{label}] PYTHONPATH={REPO_SRC} {command}\n[{label}] log: {log_path}", flush=True)
    runs: list[dict[str, Any]] = []
    try:
        with running(cmd, log_path) as proc:
            wait_ready(proc, url, args.ready_timeout)
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


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def table(runs: list[dict[str, Any]], ceiling: float) -> str:
    baseline = {
        r["clients"]: r["report"]["sentences_per_s"]
        for r in runs
        if r["config"] == PIPELINE and "report" in r
    }
    rows = [
        "| config | clients | sentences/s | p50 ms | p99 ms | health p99 ms | × pipeline | of FLOP ceiling "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        if "report" not in run:
            rows.append(f"| {run['config']} | – | failed: {run['error']} | | | | | | |")
            continue
        report = run["report"]
        rate = report["sentences_per_s"]
        base = baseline.get(run["clients"])
        health = report["health"]["p99_ms"] if report["health"] else None
        errors = ", ".join(f"{k}: {v}" for k, v in report["errors"].items()) or "0"
        rows.append(
            f"| {run['config']} | {run['clients']} | {rate:.1f} | {_fmt(report['latency_ms']['p50'])} "
            f"| {_fmt(report['latency_ms']['p99'])} | {_fmt(health)} "
            f"| {_fmt(rate / base if base else None, '.2f')} | {rate / ceiling:.1%} | {errors} |"
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
        "--configs", default="torch,onnx,torch-int8,onnx-int8", help="BACKEND[-int8],... (default: all four)"
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
    args = parser.parse_args()
    args.clients = sorted({int(c) for c in args.clients.split(",") if c.strip()})
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for config in args.configs:
        backend, _, variant = config.partition("-")
        if backend not in PLATFORMS or variant not in {"", "int8"}:
            parser.error(f"unknown config {config!r}: use torch, onnx, torch-int8 or onnx-int8")
    if args.protocol != "hf" and not args.no_baseline:
        parser.error("the pipeline baseline speaks the hf protocol only; add --no-baseline for v1/v2")
    return args


def main() -> None:
    args = parse_args()
    atexit.register(lambda: _stop(list(_children), grace=10))
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")

    shape = model_shape(args.model, args.seed)
    flops = flops_per_sentence(shape)
    rows = round(shape.mean_tokens)
    # Measured before any server starts, so the GEMM has the machine to itself.
    single = gemm_flops_per_s(rows, shape.hidden, shape.intermediate)
    batched = gemm_flops_per_s(16 * rows, shape.hidden, shape.intermediate)
    ceiling = batched / flops
    gemm = f"{shape.hidden}x{shape.intermediate}"
    print(
        f"model: hidden {shape.hidden}, layers {shape.layers}, intermediate {shape.intermediate}, "
        f"vocab {shape.vocab}; workload mean {shape.mean_tokens:.1f} tokens, {flops / 1e9:.3f} GFLOP\n"
        f"float32 GEMM {rows}x{shape.hidden} @ {gemm}: {single / 1e9:.1f} GFLOP/s; "
        f"{16 * rows}x{shape.hidden} @ {gemm}: {batched / 1e9:.1f} GFLOP/s "
        f"(the ceiling rate) -> ceiling {ceiling:.1f} sentences/s"
    )

    log_dir = Path(tempfile.mkdtemp(prefix="maskserve-bench-"))
    runs: list[dict[str, Any]] = []
    if not args.no_baseline:

        def pipeline_server(port: int) -> list[str]:
            script = str(BENCH_DIR / "pipeline_server.py")
            names = ["--model", args.model, "--name", args.model_name]
            return [sys.executable, script, *names, "--host", HOST, "--port", str(port)]

        runs += measure(PIPELINE, pipeline_server, False, args, shape, log_dir)
    settings = maskserve_settings()
    for config in args.configs:
        backend, _, variant = config.partition("-")
        flags = ["--backend", backend, *(["--quantize", variant] if variant else [])]
        if backend == "onnx" and "onnx_cache_dir" in settings:
            # Keep exports out of the model directory, which may be shared or read-only.
            flags += ["--onnx_cache_dir", str(args.onnx_cache_dir)]

        def maskserve(port: int, flags: list[str] = flags) -> list[str]:
            cmd = [sys.executable, "-m", "maskserve", "serve", args.model, "--model_name", args.model_name]
            cmd += ["--host", HOST, "--http_port", str(port)]
            if "grpc_port" in settings:  # the default 8081 may be taken by another server
                cmd += ["--grpc_port", str(free_port())]
            return [*cmd, *flags, *shlex.split(args.server_args)]

        runs += measure(config, maskserve, True, args, shape, log_dir)

    markdown = table(runs, ceiling)
    print(f"\n{markdown}")
    result = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "cpus": os.cpu_count(),
        "model": args.model,
        "shape": asdict(shape),
        "flops_per_sentence": flops,
        "gemm_flops_per_s": {f"{rows}x{shape.hidden}x{shape.intermediate}": single, "batched_x16": batched},
        "ceiling_sentences_per_s": ceiling,
        "runs": runs,
        "table": markdown,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults: {args.out}; server logs: {log_dir}")


if __name__ == "__main__":
    main()
