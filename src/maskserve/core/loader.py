"""Turn a model's settings into a loaded model: fetch it, check it is a masked LM, load its tokenizer and its
backend. No serving policy here: a server wraps the model in an engine with its own (core/repository.py), a
batch job with its own."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from maskserve.backends.base import Backend, BackendOptions
from maskserve.backends.device import default_threads
from maskserve.backends.table import BACKENDS, FALLBACK, choose_backend
from maskserve.config import ModelSettings
from maskserve.core.engine import LoadedModel
from maskserve.core.tokenize import TextEncoder, load_tokenizer
from maskserve.domain import ModelInfo
from maskserve.errors import ModelLoadError, NotAFillMaskModel
from maskserve.storage import parse_hub_ref, resolve_model_source

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


def load_model(settings: ModelSettings, *, share_cores: bool = False) -> LoadedModel:
    """The model ``settings`` name, ready to compute. ``share_cores``: other models share this process's
    cores, so idle threads must not spin."""
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
        backend = load_backend(path, settings, share_cores=share_cores)
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
        platform=BACKENDS[backend.name].platform if backend.name in BACKENDS else backend.name,
    )
    logger.info("loaded %s as %r (%s, max_length %d)", model_id, info.name, architecture, max_length)
    encoder = TextEncoder(tokenizer, max_length, truncation=settings.truncation)
    return LoadedModel(info, encoder, backend, weight_bytes(path))


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")


def weight_bytes(path: Path) -> int:
    """Bytes of a model folder's weight files: what a loaded model holds in memory, about (float32 on the
    CPU; ONNX Runtime's session holds a copy of its own graph, int8 less). The memory budget counts these."""
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES))


def graph_cache_dir(settings: ModelSettings) -> Path | None:
    """--onnx_cache_dir, else ``<--cache_dir>/maskserve-onnx`` when --cache_dir is given, else None (the
    backend's default)."""
    if settings.onnx_cache_dir:
        return Path(settings.onnx_cache_dir)
    if settings.cache_dir:
        return Path(settings.cache_dir) / "maskserve-onnx"
    return None


def worker_threads(settings: ModelSettings) -> int:
    """Intra-op threads for each model worker: the model's threads (``--threads``, else the usable cores)
    shared among the workers, so that together they never oversubscribe what the process was given (a
    pod's CPU limit arrives as ``--threads``)."""
    return max(1, (settings.threads or default_threads()) // settings.model_workers)


def backend_options(settings: ModelSettings, *, share_cores: bool = False) -> BackendOptions:
    return BackendOptions(
        device=settings.device,
        dtype=settings.dtype,
        quantize=None if settings.quantize == "none" else settings.quantize,
        threads=worker_threads(settings),
        workers=settings.model_workers,
        trust_remote_code=settings.trust_remote_code,
        cache_dir=graph_cache_dir(settings),
        calibration=Path(settings.quantize_calibration) if settings.quantize_calibration else None,
        # Several models share the cores: threads that spin while idle would take them from the model that
        # has work (docs/benchmarks.md, "Many models in one process").
        spin=not share_cores,
    )


def load_backend(path: Path, settings: ModelSettings, *, share_cores: bool = False) -> Backend:
    """The backend --backend names (auto: the table's rule). When auto chose a faster engine that cannot
    take this model, torch serves it, with one warning: the default path must never cost a model its
    serving."""
    options = backend_options(settings, share_cores=share_cores)
    name = choose_backend(settings.backend, settings.device)
    if name != FALLBACK:
        try:
            return BACKENDS[name].load_class().load(path, options)
        except Exception as exc:
            if settings.backend == name:
                raise
            logger.warning(
                "the %s fast path is not available for this model (%s); serving it with torch instead "
                "(--backend torch skips the attempt)",
                name,
                str(exc).splitlines()[0][:300],
            )
    return BACKENDS[FALLBACK].load_class().load(path, options)


def estimate_load_seconds(settings: ModelSettings) -> float:
    """A first guess at loading time for ``estimated_time``: weights read at ~150 MB/s plus start-up, more
    for a graph export; 30 s when the model must come from elsewhere first."""
    try:
        path = Path(settings.model_source())
    except ValueError:
        return 30.0
    if not path.is_dir():
        return 30.0
    size = sum(f.stat().st_size for f in path.glob("*") if f.suffix in {".safetensors", ".bin", ".pt"})
    seconds = 3.0 + size / 150e6
    if choose_backend(settings.backend, settings.device) != FALLBACK:
        seconds += size / 15e6  # a first export traces and optimizes the graph; a cached one is quicker
    return round(seconds, 1)
