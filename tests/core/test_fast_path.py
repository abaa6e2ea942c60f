"""The fast path by default: --backend auto picks ONNX Runtime on the CPU (torch on a GPU, or without
onnxruntime), an export that fails falls back to torch with one warning, and an export prepared ahead
(``maskserve download --export onnx``) is found beside the model even on a read-only mount."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import stat
from pathlib import Path

import pytest

from maskserve.backends import table
from maskserve.backends.onnx_backend import OnnxBackend
from maskserve.backends.table import choose_backend
from maskserve.cli import main
from maskserve.config import Settings
from maskserve.core.repository import load_engine
from maskserve.errors import ModelLoadError


def test_auto_means_onnx_runtime_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_backend("auto", "cpu") == "onnx"
    assert choose_backend("huggingface", "cpu") == "onnx"  # KServe's name for it
    assert choose_backend("torch", "auto") == "torch"
    assert choose_backend("onnx", "auto") == "onnx"
    monkeypatch.setattr(table, "resolve_device", lambda device: "cuda")
    assert choose_backend("auto", "auto") == "torch"


def test_auto_means_torch_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        table.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a)
    )
    assert choose_backend("auto", "cpu") == "torch"


def test_a_failing_export_falls_back_to_torch_with_one_warning(
    bert_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(*args: object, **kwargs: object) -> OnnxBackend:
        raise ValueError("the ONNX export of BertForMaskedLM disagrees with torch")

    monkeypatch.setattr(OnnxBackend, "load", failing)
    with caplog.at_level(logging.WARNING):
        engine = load_engine(Settings(model=str(bert_dir)))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert engine.info.backend == "torch"
    assert len(warnings) == 1
    assert "serving it with torch instead" in warnings[0].getMessage()
    assert "disagrees with torch" in warnings[0].getMessage()
    with pytest.raises(ModelLoadError, match="disagrees"):  # asked for by name, the failure is the answer
        load_engine(Settings(model=str(bert_dir), backend="onnx"))


def test_download_exports_beside_the_model_and_a_read_only_copy_uses_it(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # an empty user cache: nothing else to find
    target = tmp_path / "prepared"
    with pytest.raises(SystemExit) as done:
        main(["download", str(bert_dir), str(target), "--export", "onnx"])
    assert done.value.code == 0
    entries = list((target / ".maskserve-onnx").glob("*-fp32"))
    assert len(entries) == 1
    # KServe mounts the model read-only: the export is read from there, never built again.
    mounted = tmp_path / "mnt" / "models"
    shutil.copytree(target, mounted)
    for path in [mounted, *mounted.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    caplog.clear()
    try:
        with caplog.at_level(logging.INFO):
            engine = load_engine(Settings(model=str(mounted)))
    finally:
        for path in [mounted, *mounted.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert engine.info.backend == "onnx"
    assert "reusing the cached ONNX export" in caplog.text
    assert "exporting" not in caplog.text
    assert not (tmp_path / "home" / ".cache" / "maskserve" / "onnx").exists()
