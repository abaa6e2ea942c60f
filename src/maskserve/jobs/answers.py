"""One record's answer, exactly as the HF API's route answers that text with those parameters (the same JSON),
or the error message the server would give; shared by the one-machine job and the Ray workers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from maskserve.config import ModelSettings
from maskserve.core.batcher import BatchLimits
from maskserve.core.context import RequestContext
from maskserve.core.dataplane import TASKS
from maskserve.core.engine import Engine, RequestPolicy
from maskserve.core.loader import load_model
from maskserve.core.repository import batch_limits
from maskserve.errors import MaskserveError
from maskserve.jobs.records import Record
from maskserve.params import FillMaskParams, ScoreParams, TaskParams
from maskserve.protocols.common import dumps
from maskserve.protocols.hf import render_hf_response, render_scores
from maskserve.protocols.params import parse_task_params

JOB_TASKS: dict[str, type[TaskParams]] = {"fill-mask": FillMaskParams, "score": ScoreParams}


def job_engine(settings: ModelSettings) -> Engine:
    """The model behind a batcher, with a job's policy: no per-request timeout, no answer-size limit (a job
    writes to a file), and a queue as deep as the job keeps records in flight."""
    limits = batch_limits(settings)
    return Engine(
        load_model(settings),
        policy=RequestPolicy(max_inputs=1, timeout_s=None),
        limits=BatchLimits(
            limits.max_batch_size, limits.max_batch_tokens, limits.max_delay_s, max_queue=1 << 30
        ),
        workers=settings.model_workers,
    )


async def answer(
    engine: Engine, task: type[TaskParams], record: Record, default: Any
) -> tuple[Any, str | None]:
    """``(answer, None)`` or ``(None, error)``: a record's parameters, else the job's, read as the HF API
    reads them (an unknown key is an error)."""
    if record.error is not None:
        return None, record.error
    assert record.text is not None
    try:
        raw = record.params if record.params is not None else default
        params = parse_task_params(task, raw, strict=True) or task()
        results = await engine.run(TASKS[task.task], [record.text], params, RequestContext(use_cache=False))
    except MaskserveError as exc:
        return None, exc.message
    if task is ScoreParams:
        return render_scores(results, unwrap=True), None
    return render_hf_response(results, unwrap=True), None


async def answer_all(
    engine: Engine, task: type[TaskParams], records: Sequence[Record], default: Any
) -> list[tuple[Any, str | None]]:
    """Every record's answer; the records run at once, so their rows share the batcher's batches."""
    return list(await asyncio.gather(*(answer(engine, task, r, default) for r in records)))


def row(record: Record, result: tuple[Any, str | None]) -> dict[str, Any]:
    """The output record: the input's id, and its answer as JSON text or its error."""
    answer_, error = result
    return {
        "id": record.id,
        "answer": dumps(answer_).decode() if error is None else None,
        "error": error,
    }
