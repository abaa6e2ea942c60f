"""ONNX graphs built in a child process (how a server builds them, so their memory goes back when the child
exits) are the graphs an in-process build makes, and a child's failure is the parent's ValueError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskserve.backends import onnx_backend
from maskserve.backends.onnx_backend import OnnxBackend
from support.engines import engine_for


@pytest.fixture
def in_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_backend, "BUILD_IN_CHILD", True)


@pytest.mark.usefixtures("in_child")
def test_a_child_builds_the_same_graphs(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = {q: OnnxBackend.load(bert_dir, cache_dir=tmp_path / "child", quantize=q) for q in (None, "int8")}
    monkeypatch.setattr(onnx_backend, "BUILD_IN_CHILD", False)
    here = {q: OnnxBackend.load(bert_dir, cache_dir=tmp_path / "here", quantize=q) for q in (None, "int8")}
    encoder = engine_for(bert_dir).encoder
    batch = encoder.pad(encoder.encode(["the [MASK] sat on the mat .", "a [MASK] ran to the [MASK] ."]))
    for quantize in (None, "int8"):
        np.testing.assert_allclose(
            child[quantize].mask_logits(batch), here[quantize].mask_logits(batch), atol=1e-5
        )
    assert sorted(p.name.rsplit("-", 1)[1] for p in (tmp_path / "child").iterdir()) == ["fp32", "int8"]


@pytest.mark.usefixtures("in_child")
def test_a_failing_child_is_a_value_error_with_its_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", "architectures": ["BertForMaskedLM"]}')
    # The torch side fails in the child (no weights); the reason reaches the parent as one line.
    with pytest.raises(ValueError, match=r"no file named model\.safetensors") as raised:
        OnnxBackend.load(broken, cache_dir=tmp_path / "cache")
    assert "Traceback" not in str(raised.value)
    assert not list((tmp_path / "cache").glob("*-fp32"))  # nothing half-built was published
