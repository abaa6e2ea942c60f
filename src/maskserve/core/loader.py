"""Turn settings into a ready engine: fetch the model, check it is a masked LM, load tokenizer and backend."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskserve.backends.base import Backend
from maskserve.backends.torch_backend import TorchBackend, default_threads, resolve_device
from maskserve.config import Settings
from maskserve.core.answer_size import AnswerLimit
from maskserve.core.batcher import BatchLimits
from maskserve.core.cache import ResponseCache
from maskserve.core.decoding import DecodeLimits
from maskserve.core.engine import Engine, RequestPolicy
from maskserve.core.tokenize import TextEncoder, load_tokenizer
from maskserve.domain import ModelInfo
from maskserve.errors import ModelLoadError, NotAFillMaskModel
from maskserve.storage import parse_hub_ref, resolve_model_source

if TYPE_CHECKING:
    from maskserve.core.metrics import Metrics

logger = logging.getLogger(__name__)

# These models number positions from padding_idx + 1, so their table holds pad_token_id + 1 fewer tokens
# (RoBERTa: 514 positions, 512 tokens).
_OFFSET_POSITION_TYPES = frozenset(
    {
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
        "camembert",
        "longformer",
        "data2vec-text",
        "roberta-prelayernorm",
        "xmod",
        "ibert",
        "mpnet",
        "esm",
    }
)
_MLM_SUFFIXES = ("ForMaskedLM", "WithLMHeadModel")
# Pre-training classes whose head includes the masked-LM head (ELECTRA's is a discriminator, so not here).
_PRETRAINING_WITH_MLM = frozenset(
    {
        "BertForPreTraining",
        "AlbertForPreTraining",
        "MegatronBertForPreTraining",
        "ErnieForPreTraining",
        "NezhaForPreTraining",
        "RoCBertForPreTraining",
    }
)


def read_config(path: Path, model: str) -> dict[str, Any]:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise NotAFillMaskModel(f"{model}: no config.json in {path}; is this a Hugging Face model directory?")
    try:
        data: dict[str, Any] = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model}: cannot read {config_file}: {exc}") from exc
    return data


def check_masked_lm(config: dict[str, Any], model: str) -> str:
    """Return the architecture to report, or refuse a model that cannot fill masks."""
    architectures = [str(a) for a in config.get("architectures") or []]
    for arch in architectures:
        if arch.endswith(_MLM_SUFFIXES) or arch in _PRETRAINING_WITH_MLM:
            return arch
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = str(config.get("model_type", ""))
    if not architectures and model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return str(MODEL_FOR_MASKED_LM_MAPPING_NAMES[model_type])
    found = ", ".join(architectures) or f"model_type {model_type!r}"
    raise NotAFillMaskModel(
        f"{model} is not a masked language model ({found}); maskserve serves fill-mask models "
        "such as BertForMaskedLM, RobertaForMaskedLM or XLMRobertaForMaskedLM."
    )


def max_input_length(
    config: dict[str, Any], tokenizer_max: int | None, requested: int | None, model: str
) -> int:
    """The longest input: the tokenizer's limit bounded by the position table, and the user's if smaller."""
    limits: list[int] = []
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        if config.get("model_type") in _OFFSET_POSITION_TYPES:
            positions -= int(config.get("pad_token_id") or 0) + 1
        limits.append(positions)
    # Tokenizers without a limit report a huge sentinel (about 1e30).
    if tokenizer_max is not None and 0 < tokenizer_max < 1_000_000:
        limits.append(int(tokenizer_max))
    if not limits:
        limits.append(512)
    limit = min(limits)
    if requested is None:
        return limit
    if requested > limit:
        raise ModelLoadError(f"--max_length {requested} is more than {model} supports ({limit} tokens)")
    return requested


def load_engine(settings: Settings, metrics: Metrics | None = None) -> Engine:
    try:
        source = settings.model_source()
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc
    path = resolve_model_source(
        source,
        revision=settings.model_revision,
        cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
    )
    tokenizer_path = path
    hub = parse_hub_ref(source)
    if hub is not None and settings.tokenizer_revision:
        tokenizer_path = resolve_model_source(
            source,
            revision=settings.tokenizer_revision,
            cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
        )

    config = read_config(path, source)
    architecture = check_masked_lm(config, source)
    try:
        tokenizer = load_tokenizer(
            tokenizer_path,
            disable_lower_case=settings.disable_lower_case,
            trust_remote_code=settings.trust_remote_code,
        )
    except Exception as exc:
        raise ModelLoadError(f"{source}: cannot load its tokenizer: {exc}") from exc
    if tokenizer.mask_token_id is None:
        raise NotAFillMaskModel(f"{source}: its tokenizer defines no mask token, so it cannot fill masks")
    max_length = max_input_length(
        config, getattr(tokenizer, "model_max_length", None), settings.max_length, source
    )
    try:
        backend = load_backend(path, settings)
    except ValueError as exc:
        raise ModelLoadError(f"{source}: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(f"{source}: cannot load the model weights: {exc}") from exc

    model_id = hub.repo_id if hub is not None else source
    info = ModelInfo(
        name=settings.model_name,
        model_id=model_id,
        revision=(hub.revision if hub else None) or settings.model_revision,
        architecture=architecture,
        model_type=str(config.get("model_type", "")),
        mask_token=str(tokenizer.mask_token),
        vocab_size=backend.vocab_size,
        max_length=max_length,
        backend=backend.name,
        dtype=backend.dtype,
    )
    logger.info("serving %s as %r (%s, max_length %d)", model_id, info.name, architecture, max_length)
    limits = BatchLimits(
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_delay_s=settings.max_batch_delay_ms / 1000,
        max_queue=settings.max_queue,
    )
    policy = RequestPolicy(
        max_inputs=settings.max_inputs,
        max_masks=settings.max_masks,
        timeout_s=settings.request_timeout_s or None,
        answer_limit=AnswerLimit(settings.max_response_bytes, "--max_response_bytes"),
        decode=DecodeLimits(settings.max_subwords, settings.max_beams, settings.max_decode_rows),
    )
    return Engine(
        info,
        TextEncoder(tokenizer, max_length, truncation=settings.truncation),
        backend,
        settings.output_mode,
        limits,
        policy=policy,
        cache=ResponseCache(settings.cache_size, settings.cache_max_bytes),
        # One registry for every model of the process, each model's series under its own name.
        metrics=metrics.for_model(info.name) if metrics is not None else None,
        workers=settings.model_workers,
        weight_bytes=weight_bytes(path),
    )


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


def weight_bytes(path: Path) -> int:
    """Bytes of a model folder's weight files: what a loaded model holds in memory, about (float32 on the
    CPU; ONNX Runtime's session holds a copy of its own graph, int8 less). The memory budget counts these."""
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES))


def onnx_cache_dir(settings: Settings) -> Path | None:
    """--onnx_cache_dir, else ``<--cache_dir>/maskserve-onnx`` when --cache_dir is given, else None (beside
    the model when writable, else the user's cache directory)."""
    if settings.onnx_cache_dir:
        return Path(settings.onnx_cache_dir)
    if settings.cache_dir:
        return Path(settings.cache_dir) / "maskserve-onnx"
    return None


def worker_threads(settings: Settings) -> int:
    """Intra-op threads for each model worker: the model's threads (``--threads``, else the usable cores)
    shared among the workers, so that together they never oversubscribe what the process was given (a
    pod's CPU limit arrives as ``--threads``)."""
    return max(1, (settings.threads or default_threads()) // settings.model_workers)


def choose_backend(settings: Settings) -> str:
    """The backend ``--backend auto`` (and KServe's ``huggingface``) means: the fastest this machine has for
    the model. On the CPU that is ONNX Runtime (1.27x torch's sentences/s on a bert-base at 16 clients,
    docs/benchmarks.md) when onnxruntime is installed; on a GPU it is torch (ONNX Runtime's graph here is
    built for the CPU). The one place this rule lives; an export that fails falls back to torch."""
    if settings.backend in {"torch", "onnx"}:
        return settings.backend
    if resolve_device(settings.device) != "cpu":
        return "torch"
    return "onnx" if importlib.util.find_spec("onnxruntime") is not None else "torch"


def load_backend(path: Path, settings: Settings) -> Backend:
    quantize = None if settings.quantize == "none" else settings.quantize
    kind = choose_backend(settings)
    if kind == "onnx":
        if resolve_device(settings.device) != "cpu":
            raise ValueError("--backend onnx runs on the CPU; use --backend torch for CUDA")
        from maskserve.backends.onnx_backend import OnnxBackend

        try:
            return OnnxBackend.load(
                path,
                cache_dir=onnx_cache_dir(settings),
                quantize=quantize,
                threads=worker_threads(settings),
                trust_remote_code=settings.trust_remote_code,
                calibration=Path(settings.quantize_calibration) if settings.quantize_calibration else None,
                # Several models share the cores: threads that spin while idle would take them from the
                # model that has work (docs/benchmarks.md, "Many models in one process").
                spin=not settings.several_models,
            )
        except Exception as exc:
            if settings.backend == "onnx":
                raise
            # The default path must never cost a model its serving: torch runs every model ONNX can.
            logger.warning(
                "the ONNX Runtime fast path is not available for this model (%s); serving it with torch "
                "instead (--backend torch skips the attempt)",
                str(exc).splitlines()[0][:300],
            )
    return TorchBackend.load(
        path,
        device=settings.device,
        dtype=settings.dtype,
        quantize=quantize,
        threads=worker_threads(settings),
        trust_remote_code=settings.trust_remote_code,
    )


def estimate_load_seconds(settings: Settings) -> float:
    """A first guess at loading time for ``estimated_time``: weights read at ~150 MB/s plus start-up, more
    for an ONNX export; 30 s when the model must come from elsewhere first."""
    try:
        path = Path(settings.model_source())
    except ValueError:
        return 30.0
    if not path.is_dir():
        return 30.0
    size = sum(f.stat().st_size for f in path.glob("*") if f.suffix in {".safetensors", ".bin", ".pt"})
    seconds = 3.0 + size / 150e6
    if choose_backend(settings) == "onnx":
        seconds += size / 15e6  # a first export traces and optimizes the graph; a cached one is quicker
    return round(seconds, 1)
