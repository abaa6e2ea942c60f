"""The ONNX Runtime backend: parity with torch, the export cache, int8, errors.

Fixture model directories are shared by the whole session and stay read-only: every load here passes
``cache_dir`` or works on a copy of the model directory.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from maskserve.backends import cache, onnx_export, onnx_quantize
from maskserve.backends.onnx_backend import OnnxBackend
from maskserve.core.context import RequestContext
from maskserve.params import FillMaskParams
from support.concurrency import assert_concurrent_calls_match_serial
from support.engines import engine_for
from support.graphs import padded, sample_texts
from support.models import build_bert


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module, so each family is exported once."""
    return tmp_path_factory.mktemp("onnx-cache")


def test_parity_with_torch(mlm_dir: tuple[str, Path], onnx_cache: Path) -> None:
    family, path = mlm_dir
    backend = OnnxBackend.load(path, cache_dir=onnx_cache)
    reference = engine_for(path).backend
    assert (backend.name, backend.device, backend.dtype) == ("onnx", "cpu", "float32")
    assert backend.vocab_size == reference.vocab_size
    assert backend.head_at_masks, family
    assert backend.last_layer_at_masks, family
    texts = sample_texts(path)
    # Shapes unlike the export's dummy (2 x 8) and probe (3 x 13): 4 rows of up to ~40 tokens, 1 row, ...
    for chunk in (texts, texts[:1], texts[2:3], texts[1:3]):
        batch = padded(path, chunk)
        got = backend.mask_logits(batch)
        want = reference.mask_logits(batch)
        assert got.dtype == np.float32
        assert got.shape == (len(batch.mask_rows), backend.vocab_size)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=family)
    assert padded(path, texts).input_ids.shape[1] > 30


def test_model_workers_can_share_the_session(bert_dir: Path, onnx_cache: Path) -> None:
    backend = OnnxBackend.load(bert_dir, cache_dir=onnx_cache, threads=1)
    texts = sample_texts(bert_dir)
    batches = [padded(bert_dir, texts[: i + 1]) for i in range(len(texts))]
    assert_concurrent_calls_match_serial(backend, batches)


def test_cache_is_reused_and_keyed_by_the_weights(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    shutil.copytree(bert_dir, model)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    batch = padded(bert_dir, sample_texts(bert_dir))
    first = OnnxBackend.load(model).mask_logits(batch)
    cache = tmp_path / "xdg" / "maskserve" / "onnx"  # the default location, the user's cache
    (entry,) = cache.iterdir()
    assert entry.name.endswith("-fp32")
    assert {p.name for p in entry.iterdir()} == {"model.onnx", "meta.json"}
    assert json.loads((entry / "meta.json").read_text())["optimized"]

    def no_export(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("exported again")

    with monkeypatch.context() as patched:
        patched.setattr(onnx_export, "export_onnx", no_export)
        np.testing.assert_array_equal(OnnxBackend.load(model).mask_logits(batch), first)
        build_bert(model, seed=1)  # same files, same sizes, other weights
        with pytest.raises(AssertionError, match="exported again"):
            OnnxBackend.load(model)
    changed = OnnxBackend.load(model).mask_logits(batch)
    assert len(list(cache.iterdir())) == 2
    assert not np.allclose(changed, first)
    assert not list(cache.glob(".tmp-*"))


def test_the_fused_graph_keeps_layer_norms_and_gelus_unfused(
    mlm_dir: tuple[str, Path], onnx_cache: Path
) -> None:
    import onnx

    family, path = mlm_dir
    OnnxBackend.load(path, cache_dir=onnx_cache)
    entry = cache.find_entry(path, onnx_cache, f"{onnx_export.cache_key(path, None)}-fp32")
    assert entry is not None
    assert json.loads((entry / "meta.json").read_text())["optimized"], family
    ops = {node.op_type for node in onnx.load(str(entry / "model.onnx")).graph.node}
    assert {"Attention", "LayerNormalization"} <= ops, family
    assert not ops & {"SkipLayerNormalization", "BiasGelu"}, family


def test_cache_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = tmp_path / "given"
    assert cache.cache_root(tmp_path / "model", given) == given
    (tmp_path / "model").mkdir()
    # By default the user's cache, never the user's model folder.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root(tmp_path / "model", None) == tmp_path / "xdg" / "maskserve" / "onnx"
    assert not (tmp_path / "model" / ".maskserve-onnx").exists()
    # A home that cannot be written (a read-only container): beside the model, else the temporary directory.
    blocked = tmp_path / "not-a-dir"
    blocked.write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert cache.cache_root(tmp_path / "model", None) == tmp_path / "model" / ".maskserve-onnx"
    assert cache.cache_root(blocked, None) == Path(tempfile.gettempdir()) / "maskserve-onnx"


def _downstream_of_masks(graph: Any) -> list[Any]:
    """The nodes computing the LM head: everything that depends on the mask positions."""
    seen: dict[str, Any] = {}
    frontier = {"mask_rows", "mask_cols"}
    while frontier:
        name = frontier.pop()
        for node in graph.node:
            if name in node.input and node.name not in seen:
                seen[node.name] = node
                frontier.update(node.output)
    return list(seen.values())


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
def test_int8_quantizes_the_encoder_and_the_projection_but_not_the_mask_rows(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fused: bool
) -> None:
    import onnx

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # nothing another test built
    if not fused:  # the plain export: a Gather and the head's Gemm read one tied embedding initializer
        monkeypatch.setattr(onnx_export, "_BERT_LIKE", set())
    # The mechanics of the int8 graph (the projection's own weight, the float mask rows), on the recipe
    # that quantizes every encoder product; the default recipe's choices are in test_int8_recipe.py.
    monkeypatch.setattr(onnx_quantize, "DEFAULT_RECIPE", onnx_quantize.Int8Recipe())
    fp32 = OnnxBackend.load(bert_dir, cache_dir=tmp_path)
    int8 = OnnxBackend.load(bert_dir, cache_dir=tmp_path, quantize="int8")
    assert int8.dtype == "float32+int8"
    assert int8.head_at_masks
    batch = padded(bert_dir, sample_texts(bert_dir))
    got, want = int8.mask_logits(batch), fp32.mask_logits(batch)
    assert got.shape == want.shape == (len(batch.mask_rows), fp32.vocab_size)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99

    # The int8 graph is a cache entry of its own, beside the fp32 one it was made from.
    assert sorted(p.name.rsplit("-", 1)[1] for p in tmp_path.iterdir()) == ["fp32", "int8"]
    (entry,) = tmp_path.glob("*-int8")
    model = onnx.load(str(entry / "model.onnx"))
    graph = model.graph
    ops = [node.op_type for node in graph.node]
    assert "MatMulInteger" in ops  # the encoder's feed-forward and output projections
    # Layer 1 of 2 is the last: only its k and v read every token; its q, attention output, up and down
    # run at the masks, downstream of the mask indices, in float. Layer 0 has q, k, v, attention output,
    # up, down; fused, its q/k/v are one QAttention.
    # + 1: the vocabulary projection.
    assert ops.count("MatMulInteger") == (3 if fused else 6) + 2 + 1
    assert ops.count("QAttention") == (1 if fused else 0)
    assert json.loads((entry / "meta.json").read_text())["int8_projection"]

    # Downstream of the mask indices, only the projection is int8: one input quantized, one int8 matmul
    # by an int8 [hidden, vocab] weight.
    quantized = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}
    head = _downstream_of_masks(graph)
    assert head, "the head runs downstream of the mask positions"
    int8_head = sorted(node.op_type for node in head if node.op_type in quantized)
    assert int8_head == ["DynamicQuantizeLinear", "MatMulInteger"]
    hidden = json.loads((entry / "meta.json").read_text())["hidden_size"]
    initializers = {t.name: t for t in graph.initializer}
    (matmul,) = [node for node in head if node.op_type == "MatMulInteger"]
    weight = initializers[matmul.input[1]]
    assert weight.data_type == onnx.TensorProto.INT8
    assert list(weight.dims) == [hidden, fp32.vocab_size]

    # The tied word-embedding matrix stays float, [vocab, hidden], read by the lookup only.
    floats = {t.name: t for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    readers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            if name in floats:
                readers.setdefault(name, set()).add(node.op_type)
    (embedding,) = [name for name, t in floats.items() if list(t.dims) == [fp32.vocab_size, hidden]]
    assert readers[embedding] <= {"Gather", "EmbedLayerNormalization"}


def test_missing_onnxruntime_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    message = "--backend onnx needs onnxruntime: pip install 'maskserve[onnx]'"
    with pytest.raises(ValueError, match=re.escape(message)):
        OnnxBackend.load(tmp_path)


def test_export_failure_is_a_value_error(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(torch.onnx, "export", fail)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # nothing another test built
    with pytest.raises(ValueError, match=r"cannot export BertForMaskedLM to ONNX: .*frobnicate"):
        OnnxBackend.load(bert_dir, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())  # nothing half-built is left behind


def _matmul_graph(weight: np.ndarray, **attributes: Any) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    op = "FusedMatMul" if attributes else "MatMul"
    extra = {"domain": "com.microsoft"} if attributes else {}
    node = helper.make_node(op, ["h", "w"], ["logits"], name="decoder", **extra, **attributes)
    return helper.make_model(
        helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("h", TensorProto.FLOAT, [None, 4])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])],
            [numpy_helper.from_array(weight, "w")],
        )
    )


@pytest.mark.parametrize("tied", [True, False])
def test_the_vocabulary_projection_gets_a_weight_of_its_own(tied: bool) -> None:
    from onnx import numpy_helper

    from maskserve.backends.onnx_quantize import untie_vocabulary_projection

    rng = np.random.default_rng(0)
    # Tied: the [vocab, hidden] embedding matrix, transposed by the node; untied: a [hidden, vocab] weight.
    weight = rng.standard_normal((10, 4) if tied else (4, 10)).astype(np.float32)
    model = _matmul_graph(weight, transB=1) if tied else _matmul_graph(weight)
    assert untie_vocabulary_projection(model, vocab_size=10) == "decoder_projection"
    (node,) = model.graph.node
    assert (node.op_type, list(node.output)) == ("MatMul", ["logits"])
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(arrays[node.input[1]], weight.T if tied else weight)
    np.testing.assert_array_equal(arrays["w"], weight)  # what the embedding lookup reads is untouched


def test_a_graph_without_a_vocabulary_projection_is_left_alone() -> None:
    from maskserve.backends.onnx_quantize import untie_vocabulary_projection

    model = _matmul_graph(np.zeros((4, 10), np.float32))
    assert untie_vocabulary_projection(model, vocab_size=7) is None
    assert [node.op_type for node in model.graph.node] == ["MatMul"]


async def test_word_options_on_onnx_answer_as_on_torch(bert_dir: Path, onnx_cache: Path) -> None:
    # The word algorithms only ask the backend for logits at chosen positions: ONNX serves them too.
    onnx = engine_for(bert_dir, backend="onnx", onnx_cache_dir=str(onnx_cache))
    torch_engine = engine_for(bert_dir)
    cases = [
        ("the [MASK] sat on the mat .", FillMaskParams(targets=("cat", "catmatdog"), target_scoring="word")),
        ("the [MASK] sat on the mat .", FillMaskParams(top_k=4, whole_word=True, max_subwords=3)),
        ("the [MASK] sat on the [MASK] .", FillMaskParams(top_k=3, decoding="joint")),
    ]
    for text, params in cases:
        (got,) = await onnx.fill_mask([text], params, RequestContext(use_cache=False))
        (want,) = await torch_engine.fill_mask([text], params, RequestContext(use_cache=False))
        assert [c.tokens for c in got[0]] == [c.tokens for c in want[0]], params
        assert [c.score for c in got[0]] == pytest.approx([c.score for c in want[0]], rel=1e-4)
