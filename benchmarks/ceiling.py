"""What this machine could do at best: the model's FLOPs per sentence and the GEMM rates that bound them.

The float32 rate is torch's (MKL/oneDNN) matmul; the int8 rate is ONNX Runtime's ``DynamicQuantizeMatMul``,
the kernel its dynamically quantized graphs run for every encoder matmul (it quantizes the activations on
the fly, as ``--quantize int8`` does). Both are measured on the shape that dominates the encoder's cost:
a 16-sentence batch of the workload's mean length times the feed-forward weight. Dividing a rate by the
FLOPs per sentence gives a ceiling in sentences/s that no serving stack on this machine can pass with
that arithmetic.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import loadgen
import workload


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


def _best_rate(call: Callable[[], object], flops: float, trials: int, seconds: float) -> float:
    for _ in range(5):
        call()
    best = 0.0
    for _ in range(trials):
        calls = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            call()
            calls += 1
        best = max(best, flops * calls / elapsed)
    return best


def gemm_flops_per_s(m: int, k: int, n: int, trials: int = 3, seconds: float = 0.4) -> float:
    """Best of short float32 trials on all cores and on one: a peak rate, robust to other work briefly
    taking a core (small GEMMs on a busy machine can be many times slower threaded than on one thread)."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    threads = torch.get_num_threads()
    best = 0.0
    try:
        with torch.inference_mode():
            for count in sorted({threads, 1}, reverse=True):
                torch.set_num_threads(count)
                best = max(
                    best, _best_rate(lambda: torch.matmul(a, b, out=out), 2 * m * k * n, trials, seconds)
                )
    finally:
        torch.set_num_threads(threads)
    return best


def int8_gemm_ops_per_s(m: int, k: int, n: int, trials: int = 3, seconds: float = 0.4) -> float | None:
    """Best of short trials of ONNX Runtime's dynamic int8 matmul (float in, float out), all cores; None
    when onnxruntime is not installed."""
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), "w"),
        numpy_helper.from_array(np.array([0.01], np.float32), "scale"),
        numpy_helper.from_array(np.array([0], np.int8), "zero"),
    ]
    node = helper.make_node(
        "DynamicQuantizeMatMul", ["x", "w", "scale", "zero"], ["y"], domain="com.microsoft"
    )
    graph = helper.make_graph(
        [node],
        "int8_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        weights,
    )
    # IR 9 / opset 17: what the ONNX Runtime versions maskserve supports all read.
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, ir_version=9, opset_imports=opsets)
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"x": rng.standard_normal((m, k)).astype(np.float32)}
    return _best_rate(lambda: session.run(None, feed), 2 * m * k * n, trials, seconds)
