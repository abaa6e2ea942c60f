"""``maskserve download URI DIR``: exit status, what it prints, and what it leaves on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from maskserve.cli import build_parser, main
from storage.hubfake import BOTH_WEIGHTS, serve_hub


@pytest.fixture
def model(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    (source / "config.json").write_text('{"model_type": "bert"}')
    (source / "tokenizer.json").write_text("{}")
    return source


def _run(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    code = exit_info.value.code
    assert isinstance(code, int)
    return code


def test_download_prints_where_the_model_went(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "out" / "bert"
    assert _run("download", str(model), str(dest)) == 0
    assert capsys.readouterr().out.strip() == str(dest)
    assert (dest / "config.json").read_text() == '{"model_type": "bert"}'
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "tokenizer.json"]


def test_failure_prints_the_reason_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("download", str(tmp_path / "missing"), str(tmp_path / "dest")) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("maskserve download: model directory")
    assert "does not exist" in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "dest").exists()


def test_existing_dir_needs_force(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old.bin").write_bytes(b"old")
    assert _run("download", str(model), str(dest)) == 1
    assert "pass --force to replace it" in capsys.readouterr().err
    assert (dest / "old.bin").exists()

    assert _run("download", model.as_uri(), str(dest), "--force") == 0
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "tokenizer.json"]


def test_revision_needs_a_hub_source(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("download", str(model), str(tmp_path / "dest"), "--revision", "v1") == 1
    assert "a revision applies to Hugging Face Hub models only" in capsys.readouterr().err


def test_unsupported_uri(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("download", "hdfs://namenode/bert", str(tmp_path / "dest")) == 1
    assert "unsupported model URI scheme hdfs://" in capsys.readouterr().err


def test_unknown_flag_is_an_error(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("download", str(model), str(tmp_path / "dest"), "--model_name", "x") == 2
    assert "unrecognized arguments: --model_name x" in capsys.readouterr().err
    assert not (tmp_path / "dest").exists()


def test_missing_dir_argument(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("download", str(model)) == 2
    assert "DIR" in capsys.readouterr().err


def test_help() -> None:
    parser = build_parser()
    assert "download" in parser.format_help()
    sub = parser._subparsers._group_actions[0].choices["download"]  # type: ignore[union-attr]
    text = sub.format_help()
    for word in ("URI", "DIR", "--revision", "--force", "--cache_dir", "s3://", "gs://", "hf://"):
        assert word in text


def test_hub_download_end_to_end(tmp_path: Path) -> None:
    """The real entry point in its own process: HF_ENDPOINT (read at import) points at the stand-in Hub."""
    with serve_hub() as hub:
        hub.add_repo("org/both", {"main": BOTH_WEIGHTS})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        env.update(
            HF_ENDPOINT=hub.url,
            HF_HOME=str(tmp_path / "hf-home"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_OFFLINE="0",
            PYTHONPATH=os.pathsep.join(
                p for p in (str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH")) if p
            ),
        )
        dest = tmp_path / "models" / "bert"
        argv = [sys.executable, "-m", "maskserve", "download", "hf://org/both", str(dest)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest)
    assert "Fetching 4 files" in done.stderr  # huggingface_hub's progress bar
    assert sorted(p.name for p in dest.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert (dest / "model.safetensors").read_bytes() == BOTH_WEIGHTS["model.safetensors"]
    assert [p.name for p in dest.parent.iterdir()] == ["bert"]
