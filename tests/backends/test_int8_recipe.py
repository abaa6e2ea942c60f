"""The int8 recipe's mechanics: smoothing leaves the float function unchanged, the products the recipe keeps
in float stay float, and the calibration text is part of what the cached graph is keyed by."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from maskserve.backends import onnx_export, onnx_quantize, onnx_smooth
from maskserve.backends.cache import find_entry
from maskserve.backends.onnx_backend import OnnxBackend
from maskserve.backends.onnx_quantize import Int8Recipe, calibration_feeds, with_calibration


@pytest.fixture(scope="module")
def fp32_entry(bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("onnx")
    OnnxBackend.load(bert_dir, cache_dir=cache)
    entry = find_entry(bert_dir, cache, f"{onnx_export.cache_key(bert_dir, None)}-fp32")
    assert entry is not None  # built here, or found where an earlier test built it
    return entry


def _run(model_bytes: bytes, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return np.asarray(session.run(None, {k: v for k, v in feed.items() if k in names})[0])


def test_smoothing_leaves_the_float_function_unchanged(bert_dir: Path, fp32_entry: Path) -> None:
    model = onnx.load(str(fp32_entry / onnx_export.MODEL_FILE))
    nodes = onnx_smooth.targets(model, set())
    assert nodes, "the graph has products to smooth"
    feeds = calibration_feeds(bert_dir, None)
    maxima = onnx_smooth.activation_maxima(
        fp32_entry / onnx_export.MODEL_FILE, [n.input[0] for n in nodes], feeds
    )
    before = onnx.load(str(fp32_entry / onnx_export.MODEL_FILE)).SerializeToString()
    assert onnx_smooth.smooth(model, nodes, maxima, 0.7) == len(nodes)
    # The scales are not all one: the activations' channels differ, so something was moved.
    scales = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    assert any(s.ndim == 1 and not np.allclose(s, 1.0) for s in scales)
    feed = feeds[3]
    np.testing.assert_allclose(
        _run(model.SerializeToString(), feed), _run(before, feed), rtol=1e-4, atol=1e-4
    )


def test_products_the_recipe_keeps_float_stay_float(bert_dir: Path, fp32_entry: Path, tmp_path: Path) -> None:
    ffn = r"intermediate/dense"
    recipe = Int8Recipe(keep_float=(ffn,), smooth_alpha=0.7)
    scratch = tmp_path / "int8"
    scratch.mkdir()
    onnx_quantize.build_int8(fp32_entry, scratch, reduce=True, recipe=recipe, model_dir=bert_dir)
    graph = onnx.load(str(scratch / onnx_export.MODEL_FILE)).graph
    integer = {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "DynamicQuantizeLinear"}
    kept = [n for n in graph.node if re.search(ffn, n.name)]
    assert any(n.op_type == "MatMul" for n in kept)  # a float MatMul ...
    assert not any(n.op_type in integer for n in kept)  # ... and no integer one in its place
    assert any(n.op_type in integer for n in graph.node), "the other products are int8"
    assert any(n.name.endswith("_Smooth") for n in graph.node)


def test_the_calibration_text_keys_the_graph(tmp_path: Path) -> None:
    smoothed = Int8Recipe(smooth_alpha=0.7)
    mine = tmp_path / "mine.txt"
    mine.write_text("# a comment line is skipped\na sentence of my own domain\n", encoding="utf-8")
    packaged, own = with_calibration(smoothed, None), with_calibration(smoothed, mine)
    assert packaged.calibration
    assert own.calibration
    assert packaged.key() != own.key()
    assert onnx_smooth.calibration_texts(mine) == ["a sentence of my own domain"]
    assert with_calibration(replace(smoothed, smooth_alpha=None), mine).calibration is None  # no smoothing
    with pytest.raises(ValueError, match="not a readable file"):
        with_calibration(smoothed, tmp_path / "missing.txt")
    assert len(onnx_smooth.calibration_texts()) == 256


def test_the_default_recipe_keeps_the_outlier_products_float(bert_dir: Path, tmp_path: Path) -> None:
    OnnxBackend.load(bert_dir, cache_dir=tmp_path, quantize="int8")
    (entry,) = tmp_path.glob("*-int8")
    graph = onnx.load(str(entry / onnx_export.MODEL_FILE)).graph
    integer = {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}
    for node in graph.node:
        if any(re.search(p, node.name) for p in onnx_quantize.OUTLIER_PRODUCTS):
            assert node.op_type not in integer, node.name
    ops = [n.op_type for n in graph.node]
    assert "QAttention" in ops  # Q, K and V of the first layer, fused and int8
    assert "MatMulInteger" in ops  # the vocabulary projection and the last layer's K and V
    assert sum(n.name.endswith("_Smooth") for n in graph.node) >= 2
