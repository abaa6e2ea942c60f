"""``maskserve batch`` on one machine: records stream from the input through the engine and its batcher (no
HTTP), many in flight at once so that batches fill up with texts of similar length, and their answers are
committed to the output in input order (jobs/outputs.py: resumable after any kill).

Exit status: 0 when every record was answered, 1 when some failed (each one's error is in the output, and a
summary line counts them), 2 for a usage error found before any work, 1 too when the model cannot load, and
130 / 143 after SIGINT / SIGTERM (everything answered so far is committed; ``--resume`` finishes the job).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskserve.config import ModelSettings
from maskserve.core.engine import Engine
from maskserve.errors import ModelLoadError
from maskserve.jobs.answers import JOB_TASKS, answer, job_engine
from maskserve.jobs.outputs import (
    Progress,
    Writer,
    open_writer,
    output_format,
    progress_path,
    read_progress,
    write_progress,
)
from maskserve.jobs.records import InputSpec, Record, UsageError, check, count, read
from maskserve.jobs.reporting import Reporter
from maskserve.protocols.common import dumps

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED_RECORDS, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class Job:
    input: InputSpec
    output: Path
    task: str = "fill-mask"
    parameters: dict[str, Any] | None = None
    resume: bool = False
    quiet: bool = False
    # A commit every this many records or seconds, whichever comes first.
    commit_records: int = 512
    commit_seconds: float = 10.0

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed job must share with the one it continues."""
        source: dict[str, Any] = {"path": self.input.path}
        if not self.input.stdin:
            stat = Path(self.input.path).stat()
            source.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        return {
            "input": source,
            "task": self.task,
            "parameters": self.parameters,
            "text_column": self.input.text_column,
            "id_column": self.input.id_column,
        }


def start(job: Job) -> Progress:
    """Where the job starts: afresh, or where a killed one stopped; a UsageError when it must not run."""
    check(job.input)
    output_format(job.output)
    if job.task not in JOB_TASKS:
        raise UsageError(f"--task must be one of {', '.join(JOB_TASKS)}, got {job.task!r}")
    progress = read_progress(job.output)
    if progress is None:
        if job.output.exists():
            if job.resume:
                raise UsageError(
                    f"{job.output} has no progress record beside it: it is a finished output (or not one of "
                    "maskserve batch's); there is nothing to resume"
                )
            raise UsageError(f"{job.output} exists: pass --resume to continue it, or remove it")
        return Progress(job=job.fingerprint())
    if not job.resume:
        raise UsageError(
            f"{job.output} is the partial output of a job that stopped ({progress.records} records done): "
            "run it again with --resume to finish it, or remove it and its .progress file"
        )
    if progress.job != job.fingerprint():
        raise UsageError(
            f"{job.output} was started with another input or other parameters ({progress.job}); resume it "
            "with the same command"
        )
    return progress


def run_job(job: Job, settings: ModelSettings) -> int:
    try:
        progress = start(job)
    except UsageError as exc:
        print(f"maskserve batch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        engine = job_engine(settings)
    except ModelLoadError as exc:
        print(f"maskserve batch: {exc}", file=sys.stderr)
        return EXIT_FAILED_RECORDS
    reporter = Reporter(count(job.input), done=progress.records, quiet=job.quiet)
    try:
        stopped = asyncio.run(process(job, engine, progress, reporter))
    except UsageError as exc:  # the input broke off mid-way: what was answered before it is kept
        reporter.close()
        print(f"maskserve batch: {exc}", file=sys.stderr)
        return EXIT_FAILED_RECORDS
    reporter.close()
    total = f"{progress.records} records, {progress.failed} failed"
    if stopped is not None:
        print(
            f"maskserve batch: stopped by {stopped.name} after {total}, all written to {job.output}; the "
            "same command with --resume finishes the job",
            file=sys.stderr,
        )
        return 128 + int(stopped)
    print(f"maskserve batch: {total}; answers in {job.output}", file=sys.stderr)
    return EXIT_FAILED_RECORDS if progress.failed else EXIT_OK


async def process(job: Job, engine: Engine, progress: Progress, reporter: Reporter) -> signal.Signals | None:
    task = JOB_TASKS[job.task]
    writer = open_writer(job.output, progress.written)
    stop: list[signal.Signals] = []
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.append, sig)
    # Enough records in flight that the batcher fills whole batches of similar lengths.
    window = max(64, 4 * engine.batcher.limits.max_batch_size)
    flight: collections.deque[tuple[Record, asyncio.Future[tuple[Any, str | None]]]] = collections.deque()
    ready: list[tuple[Any, str | None, str | None]] = []
    committed_at = time.monotonic()

    def commit() -> None:
        nonlocal committed_at
        if ready:
            progress.written = writer.write(ready)
            progress.records += len(ready)
            progress.failed += sum(1 for r in ready if r[2] is not None)
            write_progress(job.output, progress)
            reporter.update(progress.records, progress.failed)
            ready.clear()
        committed_at = time.monotonic()

    async def settle_oldest() -> None:
        record, future = flight.popleft()
        result, error = await future
        ready.append((record.id, None if error else dumps(result).decode(), error))
        if len(ready) >= job.commit_records or time.monotonic() - committed_at >= job.commit_seconds:
            commit()

    if progress.joined:  # stopped after the output was put together: only the tidying up is left
        writer.cleanup()
        progress_path(job.output).unlink()
        await engine.aclose()
        return None
    records = _reader(job.input, progress.records, 2 * window)
    try:
        while not stop:
            record = await records.get()
            if isinstance(record, Exception):
                raise UsageError(f"cannot read {job.input.path} after record {progress.records}: {record}")
            if record is None:
                break
            flight.append((record, asyncio.ensure_future(answer(engine, task, record, job.parameters))))
            if len(flight) >= window:
                await settle_oldest()
        while flight:
            await settle_oldest()
        commit()
        if not stop:
            _finish(job, writer, progress)
    finally:
        for future in [f for _, f in flight]:
            future.cancel()
        await engine.aclose()
    return stop[0] if stop else None


def _finish(job: Job, writer: Writer, progress: Progress) -> None:
    """The whole output in place, then the progress file gone (a kill in between resumes into this)."""
    writer.finish()
    progress.joined = True
    write_progress(job.output, progress)
    writer.cleanup()
    progress_path(job.output).unlink()


def _reader(spec: InputSpec, skip: int, depth: int) -> asyncio.Queue[Record | Exception | None]:
    """The records, read on a thread of their own into a bounded queue (None after the last): reading never
    blocks the loop, so a signal is heard at once even while stdin waits for its next line."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Record | Exception | None] = asyncio.Queue(depth)

    def put(item: Record | Exception | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def produce() -> None:
        # RuntimeError from put: the loop closed, the job stopped; nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            try:
                for record in read(spec, skip=skip):
                    put(record)
            except Exception as exc:  # an input that breaks off mid-way: the job reports it and stops
                put(exc)
                return
            put(None)

    threading.Thread(target=produce, name="maskserve-batch-reader", daemon=True).start()
    return queue
