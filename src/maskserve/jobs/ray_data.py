"""Jobs on a Ray cluster with Ray Data, and the callable classes for a Ray pipeline of one's own.

``ds.map_batches(maskserve.ray.FillMask, fn_constructor_kwargs={"model": "google-bert/bert-base-uncased"},
batch_size=64, compute=ActorPoolStrategy(size=4))`` adds to each row ``answer`` (the HF API's answer for
its text, as JSON text) and ``error``. Each actor loads the model once and answers a batch's texts together
through its own batcher. ``maskserve batch --ray`` runs the same classes over the job's input, with the
input's order kept, and writes the output as the one-machine job does: the answers are the same.
"""

from __future__ import annotations

import asyncio
import csv
import math
import sys
from dataclasses import dataclass
from typing import Any

from maskserve.config import ModelSettings
from maskserve.jobs.answers import JOB_TASKS, answer_all, job_engine
from maskserve.jobs.outputs import open_writer, output_format
from maskserve.jobs.records import InputSpec, Record, UsageError, check, parse_line, to_record
from maskserve.jobs.reporting import Reporter
from maskserve.jobs.runner import EXIT_FAILED_RECORDS, EXIT_OK, EXIT_USAGE, Job
from maskserve.protocols.common import dumps

# The column a raw JSON Lines line travels in (Ray Data's read_text).
LINE = "text"


class MaskedLMBatches:
    """A Ray Data callable class: ``__call__(batch)`` gives the batch back with ``answer`` and ``error``."""

    task = "fill-mask"

    def __init__(
        self,
        model: str,
        parameters: dict[str, Any] | None = None,
        text_column: str | None = None,
        id_column: str | None = None,
        lines: bool = False,
        **model_settings: Any,
    ) -> None:
        # ``lines``: the rows are raw JSON Lines (maskserve batch --ray); else a column holds each text.
        self.spec = InputSpec("-", text_column, id_column)
        self.parameters = parameters
        self.lines = lines
        self.engine = job_engine(ModelSettings(model=model, **model_settings))
        self.loop = asyncio.new_event_loop()

    def records(self, batch: dict[str, Any]) -> list[Record]:
        columns = list(batch)
        size = len(batch[columns[0]]) if columns else 0
        rows = [{c: _plain(batch[c][i]) for c in columns} for i in range(size)]
        if self.lines:
            return [to_record(self.spec, 0, parse_line(row[LINE])) for row in rows]
        return [to_record(self.spec, 0, row) for row in rows]

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records = self.records(batch)
        task = JOB_TASKS[self.task]
        results = self.loop.run_until_complete(answer_all(self.engine, task, records, self.parameters))
        out = {} if self.lines else dict(batch)
        out["id"] = [r.id if self.spec.id_column is not None else None for r in records]
        out["answer"] = [None if error else dumps(value).decode() for value, error in results]
        out["error"] = [error for _, error in results]
        return out


class FillMask(MaskedLMBatches):
    """Fill-mask answers, as ``POST /models/{id}`` gives them."""

    task = "fill-mask"


class Score(MaskedLMBatches):
    """Sentence scores, as ``POST /models/{id}/score`` gives them."""

    task = "score"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value the one-machine reader gives."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str | bytes) else value


@dataclass(frozen=True)
class RayOptions:
    address: str = "auto"
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


def run_on_ray(job: Job, settings: ModelSettings, options: RayOptions) -> int:
    """``maskserve batch --ray``: the job's records on Ray Data actors, the output written here in order."""
    try:
        check(job.input)
        output_format(job.output)
        if job.resume:
            raise UsageError(
                "--resume is for one-machine jobs; a Ray job runs whole (remove the output first)"
            )
        if job.output.exists():
            raise UsageError(f"{job.output} exists: remove it, or choose another --output")
        if job.input.stdin:
            raise UsageError("a Ray job reads a file: --input - is for one-machine jobs")
        import ray
    except UsageError as exc:
        print(f"maskserve batch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError:
        print("maskserve batch: --ray needs Ray Data: pip install 'maskserve[ray]'", file=sys.stderr)
        return EXIT_USAGE
    ray.init(address=None if options.address == "auto" else options.address, log_to_driver=False)
    try:
        return _run(job, settings, options, ray)
    finally:
        ray.shutdown()


def _run(job: Job, settings: ModelSettings, options: RayOptions, ray: Any) -> int:
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = (
        True  # the output in the input's order, as one machine writes it
    )
    context.enable_progress_bars = False
    spec = job.input
    # Reading is light beside the model: it takes no CPU of the actors' (with every CPU held by an actor, a
    # read that waited for one would wait for ever).
    if spec.format == "jsonl":
        dataset = ray.data.read_text(spec.path, num_cpus=0)
    elif spec.format == "csv":
        dataset = ray.data.read_csv(spec.path, convert_options=_strings(spec.path), num_cpus=0)
    else:
        dataset = ray.data.read_parquet(spec.path, num_cpus=0)
    values = settings.model_dump(exclude={"model"})
    if values.get("threads") is None:  # an actor's cores, not the node's
        values["threads"] = max(1, math.ceil(options.cpus_per_worker))
    worker = Score if job.task == "score" else FillMask
    answered = dataset.map_batches(
        worker,
        fn_constructor_kwargs={
            "model": settings.model_source(),
            "parameters": job.parameters,
            "text_column": spec.text_column,
            "id_column": spec.id_column,
            "lines": spec.format == "jsonl",
            **values,
        },
        batch_size=64,
        compute=ray.data.ActorPoolStrategy(size=options.workers),
        num_cpus=options.cpus_per_worker,
        num_gpus=options.gpus_per_worker,
    )
    writer = open_writer(job.output, 0)
    reporter = Reporter(None, quiet=job.quiet)
    number = failed = 0
    # Arrow batches: a column of nothing but nulls stays nulls (numpy would make it NaN floats).
    for batch in answered.iter_batches(batch_size=512, batch_format="pyarrow"):
        rows = []
        for row in batch.select(["id", "answer", "error"]).to_pylist():
            number += 1
            failed += row["error"] is not None
            rows.append((row["id"] if spec.id_column is not None else number, row["answer"], row["error"]))
        writer.write(rows)
        reporter.update(number, failed)
    writer.finish()
    writer.cleanup()
    reporter.close()
    print(f"maskserve batch: {number} records, {failed} failed; answers in {job.output}", file=sys.stderr)
    return EXIT_FAILED_RECORDS if failed else EXIT_OK


def _strings(path: str) -> Any:
    """CSV columns read as text, as the one-machine job reads them (Ray would guess numbers)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(path, newline="", encoding="utf-8") as handle:
        header: list[str] = next(csv.reader(handle), [])
    return pcsv.ConvertOptions(column_types={name: pa.string() for name in header})
