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


def test_api_keys_from_flags_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from maskserve.cli import build_parser, settings_from_args

    args, unknown = build_parser().parse_known_args(["serve", "--api_key", "a1", "--api_key=b2"])
    settings = settings_from_args(args, unknown)
    assert settings.api_keys() == {"a1", "b2"}
    assert "a1" not in repr(settings)
    monkeypatch.setenv("MASKSERVE_API_KEY", " x , y ,")
    keys = tmp_path / "keys"
    keys.write_text("# comment\nfile-key\n\n", encoding="utf-8")
    assert Settings(api_key_file=str(keys)).api_keys() == {"x", "y", "file-key"}
    with pytest.raises(ValueError, match="cannot read --api_key_file"):
        Settings(api_key_file=str(tmp_path / "missing")).api_keys()
