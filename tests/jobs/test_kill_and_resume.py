"""``maskserve batch`` as a process, killed: after SIGKILL (at two points) or SIGTERM, the same command with
``--resume`` finishes, and the output holds every input exactly once, in order, byte for byte what an
uninterrupted run writes. The input comes through stdin, so a job can never finish before the test kills it:
the test decides how many records exist when it does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from maskserve.jobs.outputs import read_progress
from support.servers import server_env
from support.waiting import poll

pytestmark = pytest.mark.e2e

RECORDS = 600


def _lines(count: int) -> bytes:
    return "".join(json.dumps(f"the {'[MASK]'} number {i} sat .") + "\n" for i in range(count)).encode()


def _batch(bert_dir: Path, output: Path, *extra: str) -> subprocess.Popen[bytes]:
    # One text a batch: every run computes each record alike, so whole outputs compare byte for byte.
    argv = [sys.executable, "-m", "maskserve", "batch", str(bert_dir), "--input", "-",
            "--output", str(output), "--backend", "torch", "--max_batch_size", "1", "--commit_every", "25",
            "--quiet", *extra]  # fmt: skip
    return subprocess.Popen(argv, env=server_env(), stdin=subprocess.PIPE, stderr=subprocess.PIPE)


def _whole(bert_dir: Path, output: Path, *extra: str) -> tuple[int, str]:
    proc = _batch(bert_dir, output, *extra)
    _, err = proc.communicate(_lines(RECORDS), timeout=600)
    return proc.returncode, err.decode()


def _stopped_after(
    bert_dir: Path, output: Path, first: int, records: int, sig: signal.Signals, *extra: str
) -> int:
    """Start a job, give it ``records`` records and keep its stdin open; once ``first`` are committed, send
    ``sig``; return its exit status."""
    proc = _batch(bert_dir, output, *extra)
    assert proc.stdin is not None
    proc.stdin.write(_lines(RECORDS)[: len(_lines(records))])
    proc.stdin.flush()

    done = poll(lambda: read_progress(output), lambda p: p is not None and p.records >= first)
    assert done is not None
    assert done.records >= first, f"{first} records committed"
    proc.send_signal(sig)
    code = proc.wait(120)
    proc.stdin.close()
    return code


def test_sigkill_twice_then_resume_equals_an_uninterrupted_run(bert_dir: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference.jsonl"
    code, err = _whole(bert_dir, reference)
    assert code == 0, err
    assert err.splitlines() == [f"maskserve batch: {RECORDS} records, 0 failed; answers in {reference}"]
    output = tmp_path / "out.jsonl"
    assert _stopped_after(bert_dir, output, 100, 300, signal.SIGKILL) == -signal.SIGKILL
    progress = read_progress(output)
    assert progress is not None
    assert 100 <= progress.records < RECORDS
    # Killed again, while resuming.
    assert _stopped_after(bert_dir, output, progress.records + 50, 500, signal.SIGKILL, "--resume") == -9
    code, err = _whole(bert_dir, output, "--resume")
    assert code == 0, err
    assert output.read_bytes() == reference.read_bytes()
    assert read_progress(output) is None


def test_sigterm_stops_with_everything_written_and_resume_finishes(bert_dir: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference.jsonl"
    assert _whole(bert_dir, reference)[0] == 0
    output = tmp_path / "out.jsonl"
    assert _stopped_after(bert_dir, output, 50, 200, signal.SIGTERM) == 128 + signal.SIGTERM
    progress = read_progress(output)
    assert progress is not None
    # Everything it answered before stopping is committed: the output ends at its last commit.
    assert output.stat().st_size == progress.written
    assert len(output.read_text().splitlines()) == progress.records >= 50
    code, err = _whole(bert_dir, output)  # without --resume: refused, nothing touched
    assert code == 2
    assert "--resume" in err
    assert _whole(bert_dir, output, "--resume")[0] == 0
    assert output.read_bytes() == reference.read_bytes()
