"""ONNX graphs built in a child process (how a server builds them, so their memory goes back when the child
exits) are the graphs an in-process build makes, a child's failure is the parent's ValueError, and a child
that dies without an answer is one too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskserve.backends import child as build_child
from maskserve.backends.onnx_backend import OnnxBackend
from support.engines import engine_for
from support.servers import server_env


@pytest.fixture
def in_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_child, "IN_PROCESS", False)


@pytest.mark.usefixtures("in_child")
def test_a_child_builds_the_same_graphs(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy of the model and an empty user cache: no graph another test built can be found instead.
    model = tmp_path / "model"
    shutil.copytree(bert_dir, model, ignore=shutil.ignore_patterns(".maskserve-onnx"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    child = {q: OnnxBackend.load(model, cache_dir=tmp_path / "child", quantize=q) for q in (None, "int8")}
    monkeypatch.setattr(build_child, "IN_PROCESS", True)
    here = {q: OnnxBackend.load(model, cache_dir=tmp_path / "here", quantize=q) for q in (None, "int8")}
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


@pytest.mark.usefixtures("in_child")
def test_a_child_that_dies_is_a_value_error_with_its_exit_status() -> None:
    with pytest.raises(ValueError, match=r"ended without an answer \(exit status 3\)"):
        build_child.run_build(os._exit, 3)


def test_a_script_without_a_main_guard_can_build(bert_dir: Path, tmp_path: Path) -> None:
    """A child is a fresh interpreter: the user's script is not run again in it (as multiprocessing's spawn
    would do, loading the models twice)."""
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\n"
        "from maskserve.backends.onnx_backend import OnnxBackend\n"
        f"OnnxBackend.load(Path({str(bert_dir)!r}), cache_dir=Path({str(tmp_path / 'cache')!r}))\n"
        "print('built')\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], env=server_env(XDG_CACHE_HOME=str(tmp_path / "xdg")),
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "built"
    assert list((tmp_path / "cache").glob("*-fp32"))
