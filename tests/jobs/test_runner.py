"""``maskserve batch`` on one machine, in-process: each record's answer is the HF route's answer for its
text and parameters (the same JSON), in input order with its id; a bad record carries the server's message
and the job goes on; exit statuses; an output is never overwritten; a stopped job resumes; Parquet out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from maskserve.config import ModelSettings
from maskserve.core.scoring import SCORE
from maskserve.jobs.outputs import progress_path, read_progress
from maskserve.jobs.records import InputSpec
from maskserve.jobs.runner import Job, run_job
from maskserve.params import FillMaskParams, ScoreParams
from maskserve.protocols.hf import render_hf_response, render_scores
from support.answers import assert_same_answers
from support.engines import engine_for

TEXTS = ["the [MASK] sat on the mat .", "a [MASK] ran to the [MASK] .", "no mask at all", "the dog [MASK] ."]


def _settings(path: Path) -> ModelSettings:
    return ModelSettings(model=str(path), backend="torch")


def _input(tmp_path: Path, rows: list[Any]) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _hf(path: Path, text: str, params: FillMaskParams) -> Any:
    return render_hf_response(asyncio.run(engine_for(path).fill_mask([text], params)), unwrap=True)


def test_each_answer_is_the_hf_routes_and_bad_records_carry_its_message(
    bert_dir: Path, tmp_path: Path
) -> None:
    source = _input(
        tmp_path, [TEXTS[0], {"inputs": TEXTS[1], "parameters": {"top_k": 2}}, TEXTS[2], TEXTS[3]]
    )
    output = tmp_path / "out.jsonl"
    job = Job(InputSpec(str(source)), output, parameters={"top_k": 3}, quiet=True)
    assert run_job(job, _settings(bert_dir)) == 1  # one record failed
    lines = _lines(output)
    assert [line["id"] for line in lines] == [1, 2, 3, 4]
    assert_same_answers(lines[0]["answer"], _hf(bert_dir, TEXTS[0], FillMaskParams(top_k=3)))
    assert_same_answers(
        lines[1]["answer"], _hf(bert_dir, TEXTS[1], FillMaskParams(top_k=2))
    )  # its own parameters
    assert lines[2] == {"id": 3, "error": "No mask_token ([MASK]) found on the input"}
    assert_same_answers(lines[3]["answer"], _hf(bert_dir, TEXTS[3], FillMaskParams(top_k=3)))
    assert not progress_path(output).exists()  # a finished job leaves its output alone


def test_scores_and_parquet_output(bert_dir: Path, tmp_path: Path) -> None:
    source = _input(tmp_path, [{"text": "the cat sat .", "key": "a"}, {"text": "a dog ran .", "key": "b"}])
    output = tmp_path / "out.parquet"
    job = Job(
        InputSpec(str(source), id_column="key"), output, task="score", parameters={"words": True}, quiet=True
    )
    assert run_job(job, _settings(bert_dir)) == 0
    table = pq.read_table(output).to_pylist()
    assert [row["id"] for row in table] == ["a", "b"]
    assert all(row["error"] is None for row in table)
    for row, text in zip(table, ["the cat sat .", "a dog ran ."], strict=True):
        want = render_scores(
            asyncio.run(engine_for(bert_dir).run(SCORE, [text], ScoreParams(words=True))), True
        )
        assert_same_answers(json.loads(row["answer"]), want)


def test_an_existing_output_is_never_overwritten(bert_dir: Path, tmp_path: Path) -> None:
    source = _input(tmp_path, [TEXTS[0]])
    output = tmp_path / "out.jsonl"
    output.write_text("precious\n")
    assert run_job(Job(InputSpec(str(source)), output, quiet=True), _settings(bert_dir)) == 2
    assert output.read_text() == "precious\n"
    # Nor is a finished one "resumed".
    assert run_job(Job(InputSpec(str(source)), output, resume=True, quiet=True), _settings(bert_dir)) == 2


def test_a_partial_output_resumes_where_it_stopped(bert_dir: Path, tmp_path: Path) -> None:
    source = _input(tmp_path, [f"the {'[MASK]'} number {i} ." for i in range(10)])
    whole = tmp_path / "whole.jsonl"
    assert run_job(Job(InputSpec(str(source)), whole, quiet=True, commit_records=3), _settings(bert_dir)) == 0
    # A job killed after its second commit, with a third chunk half written after it.
    partial = tmp_path / "partial.jsonl"
    lines = whole.read_text().splitlines(keepends=True)
    partial.write_text("".join(lines[:6]) + lines[6][:10])
    job = Job(InputSpec(str(source)), partial, quiet=True, commit_records=3)
    from maskserve.jobs.outputs import Progress, write_progress

    write_progress(
        partial, Progress(job=job.fingerprint(), records=6, written=len("".join(lines[:6]).encode()))
    )
    assert run_job(job, _settings(bert_dir)) == 2  # without --resume: refused, the partial output kept
    assert read_progress(partial) is not None
    resumed = Job(InputSpec(str(source)), partial, resume=True, quiet=True, commit_records=3)
    assert run_job(resumed, _settings(bert_dir)) == 0
    assert [line["id"] for line in _lines(partial)] == list(range(1, 11))
    for got, want in zip(_lines(partial), _lines(whole), strict=True):
        assert_same_answers(got, want)
    # Another input (or other parameters) is not the job that stopped.
    write_progress(partial, Progress(job={**job.fingerprint(), "parameters": {"top_k": 9}}, records=6))
    assert run_job(resumed, _settings(bert_dir)) == 2


def test_usage_errors_exit_2_before_the_model_loads(tmp_path: Path) -> None:
    source = _input(tmp_path, ["a [MASK]"])
    missing_model = ModelSettings(model=str(tmp_path / "no-model"), backend="torch")
    assert run_job(Job(InputSpec(str(source)), tmp_path / "out.csv", quiet=True), missing_model) == 2
    assert run_job(Job(InputSpec(str(tmp_path / "none.jsonl")), tmp_path / "o.jsonl"), missing_model) == 2
    assert run_job(Job(InputSpec(str(source)), tmp_path / "o.jsonl", quiet=True), missing_model) == 1
