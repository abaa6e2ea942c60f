from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from maskserve.cli import build_parser, main, predict_text_and_targets, settings_from_args
from maskserve.config import Settings
from support.servers import server_env


def _settings(*argv: str) -> Settings:
    args, unknown = build_parser().parse_known_args(list(argv))
    return settings_from_args(args, unknown)


def test_kserve_flags_map_onto_settings() -> None:
    s = _settings(
        "serve",
        "--model_name=bert",
        "--model_id=google-bert/bert-base-uncased",
        "--http_port",
        "9001",
        "--max_length",
        "128",
        "--dtype",
        "float16",
        "--disable_lower_case",
        "--return_probabilities",
    )
    assert s.model_name == "bert"
    assert s.model_id == "google-bert/bert-base-uncased"
    assert s.http_port == 9001
    assert s.max_length == 128
    assert s.dtype == "float16"
    assert s.disable_lower_case is True
    assert s.return_probabilities is True


@pytest.mark.parametrize("flag", ["--return_logits", "--return_raw_logits"])
def test_logits_flag_and_its_kserve_alias(flag: str) -> None:
    assert _settings("serve", flag).return_logits is True


def test_booleans_take_values_like_kserve() -> None:
    assert _settings("serve", "--trust_remote_code=false").trust_remote_code is False
    assert _settings("serve", "--trust_remote_code", "true").trust_remote_code is True
    with pytest.raises(SystemExit):
        _settings("serve", "--trust_remote_code=maybe")


def test_positional_model() -> None:
    assert _settings("serve", "./my-model", "--model_name", "m").model == "./my-model"


def test_max_model_len_alias() -> None:
    assert _settings("serve", "--max_model_len", "100").max_length == 100


def test_kserve_server_flags_are_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        s = _settings(
            "serve",
            "--workers",
            "2",
            "--max_threads",
            "8",
            "--enable_docs_url",
            "true",
            "--model_name",
            "bert",
            "--disable_log_requests",
            "--some_new_flag=3",
        )
    assert s.model_name == "bert"
    assert s.model is None  # "2" must not have been taken for MODEL
    assert "--workers" in caplog.text
    assert "--some_new_flag=3" in caplog.text


def test_task_must_be_fill_mask() -> None:
    assert _settings("serve", "--task", "fill_mask").model_name == "model"
    with pytest.raises(SystemExit, match="fill_mask"):
        _settings("serve", "--task", "text_generation")


def test_flags_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKSERVE_MODEL_NAME", "from-env")
    assert _settings("serve").model_name == "from-env"
    assert _settings("serve", "--model_name", "from-flag").model_name == "from-flag"


def test_invalid_values_exit_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--return_logits", "--return_probabilities"])
    assert exc.value.code == 2
    assert "not both" in capsys.readouterr().err


def test_every_setting_is_a_flag() -> None:
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for name in Settings.model_fields:
        assert name in help_text or name.upper() in help_text, name


# --- maskserve predict ---


def _predict_args(*argv: str) -> tuple[str, str, list[str] | None]:
    parser = build_parser()
    args = parser.parse_args(["predict", *argv])
    text, targets = predict_text_and_targets(parser, args)
    return args.model, text, targets


@pytest.mark.parametrize(
    "argv",
    [
        ("m", "a [MASK] .", "--targets", "paris", "lyon"),
        ("m", "--targets", "paris", "lyon", "a [MASK] ."),  # what people type: the text last
        ("--targets", "paris", "lyon", "m", "a [MASK] ."),
        ("--top_k", "2", "m", "--targets", "paris", "lyon", "a [MASK] ."),
    ],
)
def test_predict_takes_targets_in_any_order_people_type(argv: tuple[str, ...]) -> None:
    assert _predict_args(*argv) == ("m", "a [MASK] .", ["paris", "lyon"])


def test_predict_without_targets() -> None:
    assert _predict_args("m", "a [MASK] .") == ("m", "a [MASK] .", None)


def test_predict_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _predict_args("m")
    assert "predict needs TEXT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _predict_args("m", "--targets", "a [MASK] .")
    assert "--targets needs at least one word" in capsys.readouterr().err


def test_predict_help_lists_only_its_own_flags() -> None:
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["predict"].format_help()  # type: ignore[union-attr]
    for flag in ("--top_k", "--targets", "--backend", "--model_revision", "--max_length"):
        assert flag in help_text, flag
    for flag in (
        "--http_port",
        "--grpc_port",
        "--api_key",
        "--max_batch_size",
        "--grace_period",
        "--workers",
    ):
        assert flag not in help_text, flag


def test_predict_refuses_server_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["predict", "m", "a [MASK] .", "--http_port", "9000"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --http_port" in capsys.readouterr().err


@pytest.mark.e2e
def test_predict_prints_the_answer_and_only_the_warnings(bert_dir: Path) -> None:
    argv = ["predict", str(bert_dir), "--targets", "Zzxqwv", "cat", "the [MASK] sat on the mat ."]
    done = subprocess.run(
        [sys.executable, "-m", "maskserve", *argv],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert {c["token_str"] for c in answer} == {"z", "cat"}
    # stderr is the answer's warning alone: no start-up lines, no progress bars.
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("maskserve: warning: target 'Zzxqwv'")


@pytest.mark.e2e
def test_score_prints_the_score_routes_answer(bert_dir: Path) -> None:
    from support.pll import sentence_score

    def score(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "maskserve", "score", str(bert_dir), *argv, "--backend", "torch"],
            env=server_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    one = score("the cat sat .", "--words", "--metric", "token")
    assert one.returncode == 0, one.stderr
    answer = json.loads(one.stdout)
    assert answer["score"] == pytest.approx(
        sentence_score(bert_dir, "the cat sat .", "token")["score"], abs=1e-5
    )
    assert [w["word"] for w in answer["words"]] == ["the", "cat", "sat", "."]
    assert one.stderr == ""  # nothing but the answer
    two = score("the cat sat .", "a dog ran .")
    assert [set(a) for a in json.loads(two.stdout)] == [{"score", "num_tokens", "pseudo_perplexity"}] * 2
    bad = score("the [MASK] sat .")
    assert bad.returncode == 2
    assert "holds the mask token" in bad.stderr


# --- several models ---


def test_model_repository_flags() -> None:
    s = _settings(
        "serve",
        "--model_repository",
        "/models",
        "--model",
        "bert=hf://google-bert/bert-base-uncased",
        "--model",
        "mine=./mine",
        "--hub_models",
        "google-bert/*,FacebookAI/xlm-roberta-base",
        "--max_models",
        "2",
        "--memory_budget",
        "8GiB",
        "--enable_repository_api",
    )
    assert s.several_models
    assert s.model_specs() == [("bert", "hf://google-bert/bert-base-uncased"), ("mine", "./mine")]
    assert s.hub_models == ("google-bert/*", "FacebookAI/xlm-roberta-base")
    assert s.memory_budget_bytes() == 8 * 1024**3
    assert s.max_models == 2
    assert s.enable_repository_api is True
    assert not _settings("serve", "./one").several_models


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "no-uri"], "NAME=URI"),
        (["--model", "bad/name=./x"], "NAME=URI"),
        (["--memory_budget", "lots"], "8GiB"),
    ],
)
def test_model_repository_flags_are_checked(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", *argv])
    assert message in capsys.readouterr().err


def test_every_setting_has_a_flag_group_and_commands_take_theirs() -> None:
    from maskserve.config import GROUPS, MODEL_GROUPS, ModelSettings

    groups = {name: f.json_schema_extra["group"] for name, f in Settings.model_fields.items()}  # type: ignore[index]
    assert set(groups.values()) <= set(GROUPS)
    # A model's settings are the model groups and batching: nothing of the server's.
    assert {groups[name] for name in ModelSettings.model_fields} == {*MODEL_GROUPS, "batching"}
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    predict = {a.dest for a in commands["predict"]._actions} & set(groups)
    assert predict == {name for name, group in groups.items() if group in {*MODEL_GROUPS, "logging"}}
    serve = {a.dest for a in commands["serve"]._actions} & set(groups)
    assert serve == set(groups)
    download = {a.dest for a in commands["download"]._actions} & set(groups)
    assert download == {"model_revision", "cache_dir", "quantize"}
