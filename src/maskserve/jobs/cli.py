"""``maskserve batch``'s flags and entry: the job's own flags beside the model's, which it takes from the
settings as ``serve`` does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from maskserve.config import MODEL_GROUPS, Settings
from maskserve.config.flags import add_settings_arguments
from maskserve.logs import configure_logging


def add_batch_parser(commands: Any) -> None:
    batch = commands.add_parser(
        "batch",
        help="run a model over a file of texts (JSON Lines, CSV, Parquet), resumable",
        description=(
            "Answer every text of INPUT with MODEL, as the HF API would, into OUTPUT (JSON Lines or "
            "Parquet), in input order, without a server; on a Ray cluster with --ray (docs/datasets.md)."
        ),
        usage="maskserve batch MODEL --input PATH --output PATH [--task fill-mask|score] [options]",
    )
    # The model's flags as `serve` takes them, and its batching: a job is the engine without the server.
    add_settings_arguments(batch, (*MODEL_GROUPS, "batching", "logging"))
    job = batch.add_argument_group("the job")
    job.add_argument("--input", required=True, help="JSON Lines, CSV or Parquet, by extension; - for stdin")
    job.add_argument(
        "--output", required=True, help="JSON Lines (.jsonl) or Parquet (.parquet); never overwritten"
    )
    job.add_argument(
        "--task", choices=["fill-mask", "score"], default="fill-mask", help="(default: fill-mask)"
    )
    job.add_argument(
        "--parameters", help="the task's parameters as JSON, e.g. '{\"top_k\": 3}' (a record's own win)"
    )
    job.add_argument("--text_column", help="the column holding the text (default: inputs, else text)")
    job.add_argument(
        "--id_column", help="a column to carry into the output as id (default: the record's number)"
    )
    job.add_argument("--resume", action="store_true", help="continue a job that was stopped or killed")
    job.add_argument(
        "--commit_every", type=int, default=512, metavar="N",
        help="records answered between two commits to the output (a kill loses at most these; default: 512)",
    )  # fmt: skip
    job.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ray = batch.add_argument_group("on a Ray cluster")
    ray.add_argument(
        "--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
        help="run on Ray Data (ADDRESS: the cluster's, default auto: RAY_ADDRESS or a local one)",
    )  # fmt: skip
    ray.add_argument(
        "--workers", type=int, default=1, help="actors, each with the model loaded once (default: 1)"
    )
    ray.add_argument("--cpus_per_worker", type=float, default=1.0, help="(default: 1)")
    ray.add_argument("--gpus_per_worker", type=float, default=0.0, help="(default: 0)")
    batch.set_defaults(log_level="warning")


def run_batch(args: argparse.Namespace, settings: Settings) -> int:
    from maskserve.jobs.records import InputSpec, UsageError, parse_parameters
    from maskserve.jobs.runner import Job, run_job

    try:
        parameters = parse_parameters(args.parameters)
    except UsageError as exc:
        print(f"maskserve batch: {exc}", file=sys.stderr)
        return 2
    job = Job(
        InputSpec(args.input, args.text_column, args.id_column),
        Path(args.output),
        task=args.task,
        parameters=parameters,
        resume=args.resume,
        quiet=args.quiet,
        commit_records=max(1, args.commit_every),
    )
    configure_logging(settings.log_level, settings.log_format)
    if settings.log_level != "debug":  # stderr is the job's progress and summary, not a bar per weight file
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if args.ray is not None:
        from maskserve.jobs.ray_data import RayOptions, run_on_ray

        options = RayOptions(args.ray, args.workers, args.cpus_per_worker, args.gpus_per_worker)
        return run_on_ray(job, settings.model_settings(), options)
    return run_job(job, settings.model_settings())
