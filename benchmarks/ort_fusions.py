"""ONNX Runtime's SkipLayerNormalization and BiasGelu fusions against maskserve's unfused session.

maskserve builds its graphs without these two fusions and turns them off in the session, because their
CPU kernels are slower than the Add + LayerNormalization and Add + Gelu they replace. This script shows
it on the same cache entry, in one process, alternating:

- ``ort default``: ONNX Runtime's session with every ORT_ENABLE_ALL fusion (it fuses both back);
- ``maskserve``: ``onnx_session.session``, as the server runs it;

and, with ``--kernels``, the bare kernels on one [batch, length, hidden] activation.

    python benchmarks/ort_fusions.py build/bench-bert-base --quantize int8 --threads 1 --kernels
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import workload

FUSED = ("SkipLayerNormalization", "BiasGelu")


def entry_for(model: Path, quantize: str | None, cache_dir: Path, threads: int) -> Path:
    from maskserve.backends import onnx_export, onnx_quantize
    from maskserve.backends.onnx_backend import OnnxBackend

    OnnxBackend.load(model, cache_dir=cache_dir, quantize=quantize, threads=threads)  # builds it if missing
    reduce = onnx_quantize.reduce_range() if quantize else False
    key = onnx_export.cache_key(model, quantize, reduce_range=reduce)
    return cache_dir / f"{key}-{quantize or 'fp32'}" / onnx_export.MODEL_FILE


def sessions(model: Path, threads: int) -> dict[str, tuple[Any, collections.Counter[str]]]:
    """Both sessions, each with the op counts of the graph it really runs."""
    from maskserve.backends import onnx_session

    real = ort.SessionOptions
    made: dict[str, tuple[Any, collections.Counter[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("ort default", "maskserve"):
            written = Path(tmp) / f"{len(made)}.onnx"

            def options(path: Path = written) -> Any:
                chosen = real()
                chosen.optimized_model_filepath = str(path)
                return chosen

            ort.SessionOptions = options  # session() builds its own; this one also writes the graph out
            try:
                if name == "maskserve":
                    sess = onnx_session.session(ort, model, threads)
                else:
                    opts = options()
                    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
                    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
            finally:
                ort.SessionOptions = real
            ops = collections.Counter(n.op_type for n in onnx.load(str(written)).graph.node)
            made[name] = (sess, ops)
    return made


def feeds(model_dir: Path, batch_sizes: list[int], seed: int) -> list[dict[str, np.ndarray]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    out = []
    for size in batch_sizes:
        texts = workload.sentences(size, seed, tokenizer.mask_token)
        enc = tokenizer(texts, padding=True, return_tensors="np")
        rows, cols = np.nonzero(enc["input_ids"] == tokenizer.mask_token_id)
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
        feed.setdefault("token_type_ids", np.zeros_like(feed["input_ids"]))
        feed["mask_rows"], feed["mask_cols"] = rows.astype(np.int64), cols.astype(np.int64)
        out.append(feed)
    return out


def _inputs_of(sess: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed less any input the exporter pruned."""
    names = {item.name for item in sess.get_inputs()}
    return {k: v for k, v in feed.items() if k in names}


def alternate(calls: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[str, float]:
    """Best seconds per call of each, the calls interleaved round by round so VM drift hits both."""
    best = {name: float("inf") for name in calls}
    for call in calls.values():
        call()
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(per_round):
                call()
            best[name] = min(best[name], (time.perf_counter() - start) / per_round)
    return best


def kernel_graph(fused: bool, op: str, hidden: int) -> bytes:
    shape = ["batch", "length", hidden]
    x, skip = (helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "skip"))
    rng = np.random.default_rng(0)
    consts = [numpy_helper.from_array(rng.random(hidden, dtype=np.float32), n) for n in ("g", "b", "bias")]
    if op == "SkipLayerNormalization":
        inputs = [x, skip]
        nodes = (
            [helper.make_node(op, ["x", "skip", "g", "b", "bias"], ["y"], domain="com.microsoft")]
            if fused
            else [
                helper.make_node("Add", ["x", "skip"], ["s"]),
                helper.make_node("Add", ["s", "bias"], ["t"]),
                helper.make_node("LayerNormalization", ["t", "g", "b"], ["y"], axis=-1),
            ]
        )
    else:
        inputs = [x]
        nodes = (
            [helper.make_node(op, ["x", "bias"], ["y"], domain="com.microsoft")]
            if fused
            else [
                helper.make_node("Add", ["x", "bias"], ["s"]),
                helper.make_node("Gelu", ["s"], ["y"], domain="com.microsoft"),
            ]
        )
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, op, inputs, [y], consts)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def kernels(hidden: int, intermediate: int, threads: int, shape: tuple[int, int], rounds: int) -> None:
    print(f"\nkernels on [{shape[0]}, {shape[1]}, width], {threads} thread(s), best of {rounds} rounds:")
    for op, width in (("SkipLayerNormalization", hidden), ("BiasGelu", intermediate)):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        rng = np.random.default_rng(1)
        names = ("x", "skip") if op == "SkipLayerNormalization" else ("x",)
        feed = {name: rng.standard_normal((*shape, width), dtype=np.float32) for name in names}
        calls, outs = {}, {}
        for fused in (True, False):
            graph = kernel_graph(fused, op, width)
            sess = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
            label = op if fused else "unfused"
            outs[label] = sess.run(None, feed)[0]
            calls[label] = lambda s=sess, f=feed: s.run(None, f)
        best = alternate(calls, rounds, 100)
        (fused_s, plain_s) = best.values()
        diff = float(np.abs(outs[op] - outs["unfused"]).max())
        print(
            f"  {op:24s} width {width}: fused {fused_s * 1e6:7.0f} us, unfused {plain_s * 1e6:7.0f} us, "
            f"fused/unfused {fused_s / plain_s:.2f}x (max |diff| {diff:.1e})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", type=Path, help="model directory")
    parser.add_argument("--quantize", choices=["int8", "none"], default="int8")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default: 1)")
    parser.add_argument("--batch-sizes", default="1,5,16", help="default: 1,5,16")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (default: 6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kernels", action="store_true", help="also time the bare kernels")
    parser.add_argument("--onnx-cache-dir", type=Path, default=Path.home() / ".cache" / "maskserve" / "onnx")
    args = parser.parse_args()
    quantize = None if args.quantize == "none" else args.quantize
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    model = entry_for(args.model, quantize, args.onnx_cache_dir, args.threads)
    print(f"graph: {model} (onnxruntime {ort.__version__}, {args.threads} thread(s))")
    made = sessions(model, args.threads)
    for name, (_, ops) in made.items():
        counts = ", ".join(f"{op} {ops[op]}" for op in (*FUSED, "LayerNormalization", "Gelu"))
        print(f"  {name:12s} runs: {counts}")
    for feed in feeds(args.model, sizes, args.seed):
        live = {name: _inputs_of(s, feed) for name, (s, _) in made.items()}
        calls = {name: (lambda s=s, f=live[name]: s.run(None, f)) for name, (s, _) in made.items()}
        best = alternate(calls, args.rounds, max(2, 48 // len(feed["input_ids"])))
        outs = [s.run(None, live[name])[0] for name, (s, _) in made.items()]
        base, ours = best["ort default"], best["maskserve"]
        print(
            f"batch {feed['input_ids'].shape[0]:2d} x {feed['input_ids'].shape[1]} tokens: ort default "
            f"{base * 1e3:6.1f} ms, maskserve {ours * 1e3:6.1f} ms per call -> {base / ours:.3f}x "
            f"(max |diff| {float(np.abs(outs[0] - outs[1]).max()):.2g})"
        )
    if args.kernels:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(str(args.model))
        kernels(cfg.hidden_size, cfg.intermediate_size, args.threads, (5, 23), args.rounds)


if __name__ == "__main__":
    main()
