from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from maskserve.config import Settings
from maskserve.domain import OutputMode


def test_kserve_defaults() -> None:
    s = Settings()
    assert (s.model_name, s.model_dir, s.http_port, s.dtype) == ("model", "/mnt/models", 8080, "auto")
    assert s.output_mode is OutputMode.TOP1


def test_env_vars_map_onto_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKSERVE_MODEL_NAME", "bert")
    monkeypatch.setenv("MASKSERVE_HTTP_PORT", "9000")
    monkeypatch.setenv("MASKSERVE_RETURN_PROBABILITIES", "true")
    s = Settings()
    assert (s.model_name, s.http_port, s.output_mode) == ("bert", 9000, OutputMode.PROBABILITIES)


def test_output_modes_are_exclusive() -> None:
    assert Settings(return_logits=True).output_mode is OutputMode.LOGITS
    with pytest.raises(ValidationError, match="not both"):
        Settings(return_logits=True, return_probabilities=True)


def test_model_source_order(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "config.json").write_text("{}")
    assert Settings(model="x/y", model_id="a/b").model_source() == "x/y"
    assert Settings(model_id="a/b", model_dir=str(full)).model_source() == "a/b"
    assert Settings(model_dir=str(full)).model_source() == str(full)
    with pytest.raises(ValueError, match="no model to serve"):
        Settings(model_dir=str(empty)).model_source()
