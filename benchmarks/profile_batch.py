"""Where one batch's time goes in ONNX Runtime: per operator type, from ORT's own profiler, for the batch
that 16 clients make (16 workload sentences of mixed length), run as the engine runs it (split into
calls over similar lengths) and, for comparison, as one padded call. Also the padding each way, and the
share of the FLOPs that are GEMMs.

    python benchmarks/profile_batch.py build/bench-bert-base --repeat 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

import workload

# Operators that are matrix products (the part the GEMM ceiling bounds).
GEMM_OPS = {
    "MatMul",
    "FusedMatMul",
    "Gemm",
    "Attention",
    "MatMulNBits",
    "QAttention",
    "DynamicQuantizeMatMul",
}


def profile(
    model_file: Path, threads: int, calls: list[dict[str, np.ndarray]], repeat: int
) -> dict[str, float]:
    """Milliseconds per batch by operator type (and ``run`` for the whole ``session.run``)."""
    import onnxruntime as ort

    from maskserve.backends import onnx_session

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(
            str(model_file),
            sess_options=options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(onnx_session._SLOW_FUSIONS),
        )
        for call in calls:  # warm-up, not counted below
            session.run([onnx_session.OUTPUT], call)
        events_before = len(calls)
        for _ in range(repeat):
            for call in calls:
                session.run([onnx_session.OUTPUT], call)
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    totals: dict[str, float] = defaultdict(float)
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    counted = runs[events_before:]
    start = counted[0]["ts"] if counted else 0
    for event in events:
        if event.get("cat") == "Node" and event["ts"] >= start and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / 1000.0
    totals["run"] = sum(e["dur"] for e in counted) / 1000.0
    return {k: v / repeat for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="default: the usable cores")
    args = parser.parse_args()

    from maskserve.backends import onnx_build, onnx_export
    from maskserve.backends.device import default_threads
    from maskserve.backends.onnx_session import graph_feed
    from maskserve.config import Settings
    from maskserve.core.repository import load_engine
    from maskserve.core.split import length_runs

    threads = args.threads or default_threads()
    engine = load_engine(Settings(model=args.model, backend="torch", log_level="warning"))
    entry = onnx_build.ensure_fp32(Path(args.model), None, threads=threads, trust_remote_code=False)
    model_file = entry / onnx_export.MODEL_FILE
    import onnx

    names = {i.name for i in onnx.load(str(model_file), load_external_data=False).graph.input}
    items = engine.encoder.encode(workload.sentences(args.batch, args.seed, engine.info.mask_token))
    lengths = [it.length for it in items]
    runs = length_runs(lengths)
    split_calls = [graph_feed(engine.encoder.pad([items[i] for i in run]), names) for run in runs]
    one_call = [graph_feed(engine.encoder.pad(items), names)]
    real = sum(lengths)
    padded_split = sum(len(run) * max(lengths[i] for i in run) for run in runs)
    padded_one = len(items) * max(lengths)
    print(
        f"{len(items)} sentences, {real} tokens (mean {real / len(items):.1f}, longest {max(lengths)}); "
        f"as the engine runs it: {len(runs)} calls, {padded_split} padded tokens "
        f"({real / padded_split:.0%} real); one call: {padded_one} ({real / padded_one:.0%} real); "
        f"{threads} threads"
    )
    for label, calls in (("engine's split", split_calls), ("one padded call", one_call)):
        ms = profile(model_file, threads, calls, args.repeat)
        run = ms.pop("run")
        ops = sum(ms.values())
        gemm = sum(v for k, v in ms.items() if k in GEMM_OPS)
        print(
            f"\n{label}: {run:.1f} ms per batch of {len(items)} ({len(items) / run * 1000:.1f} sentences/s)"
        )
        print("| operator | ms per batch | share of the run |\n|---|---:|---:|")
        for op, value in sorted(ms.items(), key=lambda kv: -kv[1]):
            if value / run >= 0.005:
                print(f"| {op} | {value:.1f} | {value / run:.1%} |")
        products = ", ".join(sorted(GEMM_OPS & set(ms)))
        print(f"| all matrix products ({products}) | {gemm:.1f} | {gemm / run:.1%} |")
        print(f"| every other operator | {ops - gemm:.1f} | {(ops - gemm) / run:.1%} |")
        print(f"| between operators (the run's own overhead) | {run - ops:.1f} | {(run - ops) / run:.1%} |")


if __name__ == "__main__":
    main()
