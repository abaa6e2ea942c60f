"""ONNX Runtime sessions: the fusions whose CPU kernels are slower than the ops they replace stay off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from maskserve.backends import onnx_session  # noqa: E402

HIDDEN = 16


def _residual_block(path: Path) -> Path:
    """Add + LayerNormalization and Add(bias) + Gelu: what ORT would fuse into the slow kernels."""
    helper, numpy_helper, tensor = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    rng = np.random.default_rng(0)
    weights = {
        "gamma": rng.random(HIDDEN, dtype=np.float32),
        "beta": rng.random(HIDDEN, dtype=np.float32),
        "bias": rng.random(HIDDEN, dtype=np.float32),
    }
    nodes = [
        helper.make_node("Add", ["x", "skip"], ["sum"]),
        helper.make_node("LayerNormalization", ["sum", "gamma", "beta"], ["normed"], axis=-1, epsilon=1e-12),
        helper.make_node("Add", ["normed", "bias"], ["biased"]),
        helper.make_node("Gelu", ["biased"], ["y"], domain="com.microsoft"),
    ]
    shape = ["batch", "length", HIDDEN]
    graph = helper.make_graph(
        nodes,
        "block",
        [helper.make_tensor_value_info(n, tensor.FLOAT, shape) for n in ("x", "skip")],
        [helper.make_tensor_value_info("y", tensor.FLOAT, shape)],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _optimized_ops(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_session: Any) -> set[str]:
    """The op types of the graph a session really runs, which ORT writes out when asked to."""
    written = tmp_path / "optimized.onnx"
    real = ort.SessionOptions

    def options() -> Any:
        made = real()
        made.optimized_model_filepath = str(written)
        return made

    monkeypatch.setattr(ort, "SessionOptions", options)
    make_session()
    return {node.op_type for node in onnx.load(str(written)).graph.node}


def test_the_session_leaves_add_layer_norm_and_gelu_unfused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = _residual_block(tmp_path / "block.onnx")

    def plain() -> Any:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])

    # Left to itself, ORT fuses both: the names below are the fusions this version has.
    assert {"SkipLayerNormalization", "BiasGelu"} <= _optimized_ops(monkeypatch, tmp_path, plain)

    ops = _optimized_ops(monkeypatch, tmp_path, lambda: onnx_session.session(ort, model, 1))
    assert {"LayerNormalization", "Gelu"} <= ops
    assert not ops & {"SkipLayerNormalization", "BiasGelu"}


def test_the_unfused_session_computes_the_same(tmp_path: Path) -> None:
    model = _residual_block(tmp_path / "block.onnx")
    rng = np.random.default_rng(1)
    feed = {name: rng.standard_normal((2, 3, HIDDEN), dtype=np.float32) for name in ("x", "skip")}
    fused = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    unfused = onnx_session.session(ort, model, 1).run(None, feed)[0]
    np.testing.assert_allclose(unfused, fused, rtol=1e-5, atol=1e-5)


def test_idle_threads_spin_unless_asked_not_to(tmp_path: Path) -> None:
    model = _residual_block(tmp_path / "block.onnx")
    key = "session.intra_op.allow_spinning"
    spinning = onnx_session.session(ort, model, 2).get_session_options()
    quiet = onnx_session.session(ort, model, 2, spin=False).get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration"):
        spinning.get_session_config_entry(key)  # not set: ONNX Runtime's default, spinning
    assert quiet.get_session_config_entry(key) == "0"


def test_a_server_with_several_models_turns_spinning_off(
    bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maskserve.backends.base import BackendOptions
    from maskserve.backends.onnx_backend import OnnxBackend
    from maskserve.config import Settings
    from maskserve.core.repository import load_engine

    seen: list[bool] = []
    real = OnnxBackend.load.__func__  # type: ignore[attr-defined]

    def load(cls: type[OnnxBackend], path: Path, options: BackendOptions) -> Any:
        seen.append(options.spin)
        return real(cls, path, options)

    monkeypatch.setattr(OnnxBackend, "load", classmethod(load))
    load_engine(Settings(model=str(bert_dir), backend="onnx"))
    load_engine(Settings(models=(f"a={bert_dir}", f"b={bert_dir}"), model=str(bert_dir), backend="onnx"))
    assert seen == [True, False]
