"""Cold start, as KServe's scale-from-zero pays it on every new pod: from process start to the first
``/v2/health/ready`` 200 and to the first answer, with the model's export already prepared (as
``maskserve download --export onnx`` leaves it). Each backend with torch importable and, for the graph
engines, with torch made unimportable (as in an image without it); runs alternate. Then the size of the
virtualenv's packages with and without torch.

    python benchmarks/cold_start.py build/bench-bert-base --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from servers import HOST, free_port, wait_ready

SRC = Path(__file__).resolve().parents[1] / "src"
# Starts the server as `maskserve serve` does, with torch hidden when asked.
LAUNCH = """
import sys
if sys.argv.pop(1) == "hide":
    sys.modules["torch"] = None
from maskserve.cli import main
main(sys.argv[1:])
"""


def start_to_ready(model: str, backend: str, hide_torch: bool, cache: str) -> tuple[float, float]:
    port = free_port()
    command = [sys.executable, "-c", LAUNCH, "hide" if hide_torch else "keep", "serve", model]
    command += ["--model_name", "m", "--backend", backend, "--onnx_cache_dir", cache, "--host", HOST]
    command += ["--http_port", str(port), "--grpc_port", str(free_port()), "--log_level", "warning"]
    started = time.perf_counter()
    process = subprocess.Popen(command, env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    try:
        url = f"http://{HOST}:{port}"
        wait_ready(process, url, timeout=300, poll=0.02)
        ready = time.perf_counter() - started
        body = {"inputs": "the cat sat on the [MASK] ."}
        httpx.post(f"{url}/models/m", json=body, timeout=60).raise_for_status()
        return ready, time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(30)


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="torch,onnx,openvino")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "maskserve" / "onnx"))
    args = parser.parse_args()

    sys.path.insert(0, str(SRC))
    from maskserve.backends.onnx_backend import OnnxBackend

    OnnxBackend.load(Path(args.model), cache_dir=Path(args.cache))  # the prepared export
    variants = [(b, False) for b in args.backends.split(",")]
    variants += [(b, True) for b in args.backends.split(",") if b != "torch"]
    times: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.runs):
        for backend, hide in variants:
            label = f"{backend}{' (no torch)' if hide else ''}"
            times.setdefault(label, []).append(start_to_ready(args.model, backend, hide, args.cache))
    print("| backend | process start to ready (s, median) | to the first answer (s) | runs |")
    print("|---|---:|---:|---|")
    for label, runs in times.items():
        ready = statistics.median(r for r, _ in runs)
        first = statistics.median(f for _, f in runs)
        each = ", ".join(f"{r:.2f}" for r, _ in runs)
        print(f"| {label} | {ready:.2f} | {first:.2f} | {each} |")
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    total = size_mb(site)
    torch_mb = size_mb(site / "torch") + sum(size_mb(p) for p in site.glob("nvidia*"))
    print(
        json.dumps(
            {
                "site_packages_mb": round(total),
                "torch_mb": round(torch_mb),
                "without_torch_mb": round(total - torch_mb),
            }
        )
    )


if __name__ == "__main__":
    main()
