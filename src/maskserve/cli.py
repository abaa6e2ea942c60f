"""Command line: ``maskserve serve``, ``maskserve predict`` and ``maskserve score``, with flags built from
:class:`Settings`, and ``maskserve download``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from maskserve import __version__
from maskserve.config import MODEL_GROUPS, Settings
from maskserve.config.flags import add_settings_arguments
from maskserve.jobs.cli import add_batch_parser, run_batch
from maskserve.logs import configure_logging
from maskserve.params import ScoreParams, choices

logger = logging.getLogger("maskserve")

# KServe model-server flags that an InferenceService may pass and that have no meaning here. Each takes a
# value except the ones listed as switches; they are accepted with a warning instead of stopping the pod.
_KSERVE_IGNORED = (
    "workers",
    "max_threads",
    "max_asyncio_workers",
    "enable_docs_url",
    "enable_latency_logging",
    "configure_logging",
    "log_config_file",
    "access_log_format",
    "predictor_host",
    "protocol",
    "predictor_protocol",
    "predictor_use_ssl",
    "predictor_request_timeout_seconds",
    "predictor_request_retries",
    "tensor_input_names",
    "max_log_len",
)
_KSERVE_IGNORED_SWITCHES = (
    "enable_predictor_health_check",
    "return_token_type_ids",
    "disable_log_requests",
    "disable_special_tokens",
)
_FILL_MASK_TASKS = {"fill_mask", "fill-mask"}


def _add_kserve_compat(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("accepted for KServe compatibility (no effect)")
    for name in _KSERVE_IGNORED:
        group.add_argument(
            f"--{name}", dest=f"ignored_{name}", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    for name in _KSERVE_IGNORED_SWITCHES:
        group.add_argument(
            f"--{name}",
            dest=f"ignored_{name}",
            nargs="?",
            const=True,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    group.add_argument("--task", dest="task", default=argparse.SUPPRESS, help="must be fill_mask when given")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskserve", description="Serve Hugging Face fill-mask models.")
    parser.add_argument("--version", action="version", version=f"maskserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the HTTP server")
    add_settings_arguments(serve)
    _add_kserve_compat(serve)

    predict = commands.add_parser(
        "predict",
        help="fill the masks of one text and print the candidates as JSON",
        description="Load MODEL, fill the masks of TEXT and print the candidates as JSON (no server).",
        usage="maskserve predict MODEL TEXT [--top_k K] [--targets WORD [WORD ...]] [options]",
    )
    # What changes a one-off answer: the model, its tokenization and compute, and the log level. No server
    # flag (ports, keys, batching, limits), so that --help lists only flags that matter here.
    add_settings_arguments(predict, (*MODEL_GROUPS, "logging"))
    predict.add_argument(
        "text",
        nargs="?",
        metavar="TEXT",
        help="text with the model's mask token, e.g. 'Paris is the [MASK] of France.'",
    )
    predict.add_argument("--top_k", type=int, default=5, help="candidates per mask (default: 5)")
    predict.add_argument(
        "--targets",
        nargs="+",
        default=None,
        metavar="WORD",
        help="restrict candidates to these words; may come before MODEL and TEXT",
    )
    # A one-off prediction prints its answer, not the server's start-up lines.
    predict.set_defaults(log_level="warning")
    for action in predict._actions:
        if action.dest == "log_level":
            action.help = "log level (default: warning)"

    score = commands.add_parser(
        "score",
        help="score whole texts (pseudo-log-likelihood) and print the scores as JSON",
        description=(
            "Load MODEL and print each TEXT's pseudo-log-likelihood as JSON (no server): an object for one "
            "text, a list for several (docs/scores.md)."
        ),
        usage="maskserve score MODEL TEXT [TEXT ...] [--metric word_l2r|token] [--tokens] [--words] [...]",
    )
    add_settings_arguments(score, (*MODEL_GROUPS, "logging"))
    score.add_argument("texts", nargs="*", metavar="TEXT", help="a whole text, without a mask token")
    declared = ScoreParams.model_fields
    score.add_argument(
        "--metric", choices=list(choices(ScoreParams, "metric")), default="word_l2r",
        help=f"{declared['metric'].description} (default: word_l2r)",
    )  # fmt: skip
    score.add_argument("--tokens", action="store_true", help=declared["tokens"].description)
    score.add_argument("--words", action="store_true", help=declared["words"].description)
    score.set_defaults(log_level="warning")

    add_batch_parser(commands)

    download = commands.add_parser(
        "download",
        help="fetch a model into a directory",
        description=(
            "Fetch the model named by URI into DIR; DIR appears only once the model is complete. URI is a "
            "local directory, file://..., hf://org/name[@revision] (or a bare Hub id), s3://bucket/prefix, "
            "gs://bucket/prefix or an http(s):// .tar.gz, .tgz, .tar or .zip archive (see docs/storage.md)."
        ),
    )
    download.add_argument("uri", metavar="URI", help="where the model is")
    download.add_argument("dir", metavar="DIR", help="where to put it: missing or empty, unless --force")
    download.add_argument("--force", action="store_true", help="replace DIR when it is not empty")
    download.add_argument(
        "--export",
        choices=["onnx"],
        default=None,
        help="also build the ONNX graph into DIR/.maskserve-onnx: a server then starts without exporting",
    )
    # The model's own flags that a download reads: which revision, where the Hub cache is, and (with
    # --export) whether to build the int8 graph too.
    add_settings_arguments(download, only=("model_revision", "cache_dir", "quantize"))
    return parser


def run_download(args: argparse.Namespace) -> int:
    """``maskserve download``: print DIR and return 0, or print why not and return 1 (no traceback: the
    message is meant to be acted on, and the stack would bury it)."""
    from maskserve.errors import ModelLoadError
    from maskserve.storage import download_model

    revision, cache_dir = getattr(args, "model_revision", None), getattr(args, "cache_dir", None)
    try:
        path = download_model(
            args.uri,
            Path(args.dir),
            revision=revision,
            force=args.force,
            cache_dir=Path(cache_dir) if cache_dir else None,
        )
    except ModelLoadError as exc:
        print(f"maskserve download: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"maskserve download: interrupted; {args.dir} was left as it was", file=sys.stderr)
        return 130
    if args.export == "onnx":
        try:
            export_onnx_beside(path, quantize=getattr(args, "quantize", "none"))
        except (ValueError, ImportError) as exc:
            print(
                f"maskserve download: the model is in {path}, but its ONNX export failed: {exc}",
                file=sys.stderr,
            )
            return 1
    print(path)
    return 0


def export_onnx_beside(path: Path, *, quantize: str) -> None:
    """Build the ONNX graphs (fp32, and int8 when asked) into ``path/.maskserve-onnx``, where a server that
    serves ``path`` finds them, even from a read-only mount such as KServe's /mnt/models."""
    from maskserve.backends.cache import BESIDE_MODEL
    from maskserve.backends.onnx_backend import OnnxBackend

    cache = path / BESIDE_MODEL
    OnnxBackend.load(path, cache_dir=cache)
    if quantize == "int8":
        OnnxBackend.load(path, cache_dir=cache, quantize="int8")


def settings_from_args(args: argparse.Namespace, unknown: Sequence[str] = ()) -> Settings:
    values = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    for key in vars(args):
        if key.startswith("ignored_"):
            logger.warning("--%s is a KServe flag with no effect in maskserve; ignoring it", key[8:])
    task = getattr(args, "task", None)
    if task is not None and task not in _FILL_MASK_TASKS:
        raise SystemExit(
            f"maskserve: --task {task!r} is not supported; maskserve serves fill_mask models only"
        )
    for flag in unknown:
        logger.warning("unknown flag %s ignored", flag)
    return Settings(**values)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    # KServe runs the image with flags only; treat that as "serve".
    if argv and argv[0].startswith("--") and argv[0] not in {"--help", "-h", "--version"}:
        argv.insert(0, "serve")
    # Text until the flags are read (their warnings must show); serve() then applies --log_format.
    configure_logging("info", "text")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command in {"download", "predict", "score", "batch"} and unknown:
        # Only serve tolerates unknown flags, for KServe's sake.
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "download":
        sys.exit(run_download(args))
    stray = [u for u in unknown if not u.startswith("-")]
    if stray:
        parser.error(f"unexpected arguments: {' '.join(stray)}")
    if args.command == "predict":
        text, targets = predict_text_and_targets(parser, args)
    try:
        settings = settings_from_args(args, unknown)
    except ValidationError as exc:
        errors = "; ".join(f"--{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        parser.error(errors)

    from maskserve import server

    if args.command == "predict":
        sys.exit(server.predict(settings, text, top_k=args.top_k, targets=targets))
    if args.command == "batch":
        sys.exit(run_batch(args, settings))
    if args.command == "score":
        if not args.texts:
            parser.error("score needs TEXT: maskserve score MODEL TEXT [TEXT ...]")
        params = ScoreParams(metric=args.metric, tokens=args.tokens, words=args.words)
        sys.exit(server.score(settings, list(args.texts), params))
    sys.exit(server.serve(settings))


def predict_text_and_targets(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[str, list[str] | None]:
    """``--targets`` takes words up to the next flag, so in ``predict MODEL --targets paris lyon TEXT`` it
    also takes TEXT (and MODEL, when that comes after it too). The positionals are what is missing: they
    are taken back from the end of the words, which is how people type the command."""
    targets = list(args.targets) if args.targets is not None else None
    text = args.text
    if text is None and targets:
        text = targets.pop()
    if getattr(args, "model", None) is None and targets and text is not None:
        args.model = targets.pop()
    if text is None:
        parser.error("predict needs TEXT, a text with the model's mask token: maskserve predict MODEL TEXT")
    if targets is not None and not targets:
        parser.error("--targets needs at least one word before TEXT")
    return text, targets


if __name__ == "__main__":
    main()
