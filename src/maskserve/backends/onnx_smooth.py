"""SmoothQuant (Xiao et al. 2023) for the dynamic int8 graph: per input channel, move the activations'
outliers into the weights before quantizing.

A transformer's activations have a few channels hundreds of times larger than the rest (Bondarenko et al.
2021); dynamic int8 quantizes an activation with one scale per tensor, so those channels set the scale and
the others keep a few levels. For a quantized ``X @ W`` this computes ``(X / s) @ (s W)`` instead, with
``s_j = max|X_j|^a / max|W_j|^(1-a)`` from activation maxima measured on calibration text: the product is
the same in float, the activation is flat enough for one scale, and the weights (quantized per output
channel) absorb the difference. ``X / s`` is one elementwise Mul per quantized matrix product, in float.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_FILE = Path(__file__).with_name("calibration.txt")
# Activation statistics below this are noise: their channel is left unscaled.
_TINY = 1e-5


def calibration_texts(path: Path | None = None, limit: int = 256) -> list[str]:
    """The calibration sentences: a user's file (one per line), else the packaged set (WordNet glosses)."""
    text = (path or CALIBRATION_FILE).read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise ValueError(f"the calibration file {path} holds no sentences (one per line)")
    return lines[:limit]


def targets(model: Any, skip: set[str]) -> list[Any]:
    """What to smooth: MatMul and Attention nodes by a 2-D weight initializer, those in ``skip`` aside."""
    weights = {t.name: t for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type not in {"MatMul", "Attention"} or node.name in skip:
            continue
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        if weight is not None and len(weight.dims) == 2:
            found.append(node)
    return found


def activation_maxima(
    model_path: Path, inputs: Iterable[str], feeds: Iterable[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Per-channel max |x| of the named activations over the feeds (run one by one: no padding counted)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    names = sorted(set(inputs))
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    accepted = {i.name for i in session.get_inputs()}
    maxima: dict[str, np.ndarray] = {}
    for feed in feeds:
        values = session.run(names, {k: v for k, v in feed.items() if k in accepted})
        for name, value in zip(names, values, strict=True):
            flat = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            maxima[name] = flat if name not in maxima else np.maximum(maxima[name], flat)
    return maxima


def smooth(model: Any, nodes: list[Any], maxima: dict[str, np.ndarray], alpha: float) -> int:
    """Scale each node's weight rows by s and divide its input by s (a Mul inserted before it), in place.
    Returns how many products were smoothed."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    count = 0
    for node in nodes:
        x_max = maxima.get(node.input[0])
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        if x_max is None or x_max.shape[0] != weight.shape[0]:
            continue
        w_max = np.abs(weight).max(axis=1)
        scale = np.where(
            (x_max > _TINY) & (w_max > _TINY),
            np.power(np.maximum(x_max, _TINY), alpha) / np.power(np.maximum(w_max, _TINY), 1 - alpha),
            1.0,
        ).astype(np.float32)
        scale = np.clip(scale, 1e-4, 1e4)
        new_weight = numpy_helper.from_array(weight * scale[:, None], f"{node.input[1]}_smoothed")
        inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"{node.name}_smooth_inverse")
        graph.initializer.extend([new_weight, inverse])
        smoothed = f"{node.input[0]}_smoothed_for_{node.name}"
        mul = helper.make_node("Mul", [node.input[0], inverse.name], [smoothed], name=f"{node.name}_Smooth")
        graph.node.insert(list(graph.node).index(node), mul)
        node.input[0] = smoothed
        node.input[1] = new_weight.name
        count += 1
    return count
