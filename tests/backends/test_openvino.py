"""The OpenVINO backend: parity with torch and the pipeline, the export it shares with ONNX Runtime, model
workers on streams, the word algorithms and scores, errors.

Fixture model directories stay read-only: every load passes ``cache_dir`` or ``onnx_cache_dir``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

from maskserve.backends import onnx_export, openvino_backend
from maskserve.backends.onnx_backend import OnnxBackend
from maskserve.backends.openvino_backend import OpenVinoBackend, compile_config
from maskserve.core.context import RequestContext
from maskserve.core.scoring import SCORE
from maskserve.params import FillMaskParams, ScoreParams
from maskserve.protocols.hf import render_hf_response
from support.concurrency import assert_concurrent_calls_match_serial
from support.engines import engine_for
from support.graphs import padded, sample_texts
from support.models import mask_of


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module, so each family is exported once."""
    return tmp_path_factory.mktemp("ov-cache")


def test_parity_with_torch(mlm_dir: tuple[str, Path], graph_cache: Path) -> None:
    family, path = mlm_dir
    backend = OpenVinoBackend.load(path, cache_dir=graph_cache)
    reference = engine_for(path).backend
    assert (backend.name, backend.device, backend.dtype) == ("openvino", "cpu", "float32")
    assert backend.vocab_size == reference.vocab_size
    assert backend.head_at_masks, family
    assert backend.last_layer_at_masks, family
    texts = sample_texts(path)
    # Dynamic shapes: batches of 4, 1 and 2 rows, up to ~40 tokens, one mask or several per row.
    for chunk in (texts, texts[:1], texts[2:3], texts[1:3]):
        batch = padded(path, chunk)
        got = backend.mask_logits(batch)
        assert got.dtype == np.float32
        assert got.shape == (len(batch.mask_rows), backend.vocab_size)
        np.testing.assert_allclose(got, reference.mask_logits(batch), atol=1e-4, rtol=0, err_msg=family)


async def test_answers_equal_the_pipeline(mlm_dir: tuple[str, Path], graph_cache: Path) -> None:
    from transformers import pipeline

    family, path = mlm_dir
    engine = engine_for(path, backend="openvino", onnx_cache_dir=str(graph_cache))
    assert engine.backend.name == "openvino"
    m = mask_of(path)
    reference = pipeline("fill-mask", model=str(path))
    for text, top_k in ((f"the cat sat on the {m} .", 5), (f"the {m} sat on the {m} .", 3)):
        ours = render_hf_response(await engine.fill_mask([text], FillMaskParams(top_k=top_k)), unwrap=True)
        theirs: Any = reference(text, top_k=top_k)
        flat_ours = ours if isinstance(ours[0], dict) else [c for row in ours for c in row]
        flat_theirs = theirs if isinstance(theirs[0], dict) else [c for row in theirs for c in row]
        assert [(c["token"], c["sequence"]) for c in flat_ours] == [
            (c["token"], c["sequence"]) for c in flat_theirs
        ], family
        assert [c["score"] for c in flat_ours] == pytest.approx([c["score"] for c in flat_theirs], abs=1e-5)


def test_it_reads_the_onnx_backends_export(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One export serves both engines: after ONNX Runtime built it, OpenVINO loads without exporting."""
    batch = padded(bert_dir, sample_texts(bert_dir))
    want = OnnxBackend.load(bert_dir, cache_dir=tmp_path).mask_logits(batch)
    entries = sorted(p.name for p in tmp_path.iterdir())

    def no_export(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "export_onnx", no_export)
    got = OpenVinoBackend.load(bert_dir, cache_dir=tmp_path).mask_logits(batch)
    assert sorted(p.name for p in tmp_path.iterdir()) == entries
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_model_workers_run_on_their_own_streams(bert_dir: Path, graph_cache: Path) -> None:
    backend = OpenVinoBackend.load(bert_dir, cache_dir=graph_cache, threads=1, workers=2)
    assert backend._compiled.get_property("NUM_STREAMS") == 2
    texts = sample_texts(bert_dir)
    batches = [padded(bert_dir, texts[: i + 1]) for i in range(len(texts))]
    assert_concurrent_calls_match_serial(backend, batches)


def test_compile_config_asks_for_float32_and_one_stream_per_worker() -> None:
    assert compile_config(4, 1) == {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": "4",
        "INFERENCE_PRECISION_HINT": "f32",
    }
    assert compile_config(1, 2)["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert compile_config(1, 2)["INFERENCE_NUM_THREADS"] == "2"  # a thread for each stream at least


async def test_word_options_and_scores_answer_as_on_torch(bert_dir: Path, graph_cache: Path) -> None:
    ov = engine_for(bert_dir, backend="openvino", onnx_cache_dir=str(graph_cache))
    reference = engine_for(bert_dir)
    cases = [
        ("the [MASK] sat on the mat .", FillMaskParams(targets=("cat", "catmatdog"), target_scoring="word")),
        ("the [MASK] sat on the mat .", FillMaskParams(top_k=4, whole_word=True, max_subwords=3)),
        ("the [MASK] sat on the [MASK] .", FillMaskParams(top_k=3, decoding="joint")),
    ]
    for text, params in cases:
        (got,) = await ov.fill_mask([text], params, RequestContext(use_cache=False))
        (want,) = await reference.fill_mask([text], params, RequestContext(use_cache=False))
        assert [c.tokens for c in got[0]] == [c.tokens for c in want[0]], params
        assert [c.score for c in got[0]] == pytest.approx([c.score for c in want[0]], rel=1e-4)
    texts = ["the cat sat on the mat .", "a bird sang in the old tree ."]
    for metric in ("word_l2r", "token"):
        got_scores = await ov.run(SCORE, texts, ScoreParams(metric=metric))
        want_scores = await reference.run(SCORE, texts, ScoreParams(metric=metric))
        assert [s.score for s in got_scores] == pytest.approx([s.score for s in want_scores], abs=1e-4)


def test_missing_openvino_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ValueError, match=re.escape("pip install 'maskserve[openvino]'")):
        OpenVinoBackend.load(tmp_path)


def test_int8_and_cuda_are_refused_with_what_to_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ValueError, match=r"--backend openvino does not quantize.*--backend onnx --quantize int8"
    ):
        OpenVinoBackend.load(tmp_path, quantize="int8")
    monkeypatch.setattr(openvino_backend, "resolve_device", lambda device: "cuda")
    with pytest.raises(ValueError, match="runs on the CPU"):
        OpenVinoBackend.load(tmp_path, device="cuda")
