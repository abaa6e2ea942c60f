"""The one settings class. Command-line flags and ``MASKSERVE_*`` environment variables both map onto it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from maskserve.domain import OutputMode

Backend = Literal["auto", "torch", "onnx", "huggingface"]
Quantize = Literal["none", "int8"]
Dtype = Literal["auto", "float32", "float16", "bfloat16", "float", "half"]
Device = Literal["auto", "cpu", "cuda"]


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_UNITS.update(
    {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "k": 1024, "m": 1024**2, "g": 1024**3}
)


def parse_bytes(text: str) -> int:
    """``8GiB``, ``500MB``, ``1.5G`` or plain bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"expected a size such as 8GiB, 500MB or 1000000 (bytes), got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def _flag(description: str, *aliases: str, positional: bool = False) -> dict[str, Any]:
    """Metadata the CLI reads to build its parser from this class (so no flag is declared twice)."""
    return {
        "description": description,
        "json_schema_extra": {"aliases": list(aliases), "positional": positional},
    }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MASKSERVE_", extra="ignore", frozen=True)

    # What to serve. KServe passes --model_name and mounts the model at --model_dir; --model_id names a Hub
    # model. The positional MODEL (a directory, a Hub id or an hf:// URI) wins over both.
    model: str | None = Field(None, **_flag("model directory, Hub id or hf:// URI", positional=True))
    model_name: str = Field("model", **_flag("name the model is served under"))
    model_dir: str = Field("/mnt/models", **_flag("local model directory (KServe's storage mount)"))
    model_id: str | None = Field(None, **_flag("Hugging Face Hub model id, used when model_dir is empty"))
    model_revision: str | None = Field(None, **_flag("Hub revision (branch, tag or commit) of the model"))
    tokenizer_revision: str | None = Field(None, **_flag("Hub revision of the tokenizer"))
    cache_dir: str | None = Field(None, **_flag("where Hub downloads are cached (default: HF_HOME)"))
    trust_remote_code: bool = Field(False, **_flag("allow model code from the Hub repository"))

    # Several models in one process (docs/repository.md). Without these, one model, as KServe runs it.
    model_repository: str | None = Field(
        None,
        **_flag("folder of models, one per subfolder (written by save_pretrained), served by folder name"),
    )
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        **_flag(
            "NAME=URI: serve the model at URI as NAME (repeat for several; env: comma-separated)", "--model"
        ),
    )
    hub_models: str | None = Field(
        None,
        **_flag("Hub ids that may be loaded on request, as globs: 'google-bert/*,FacebookAI/roberta-base'"),
    )
    max_models: int | None = Field(
        None, ge=1, **_flag("most models loaded at once (least recently used unloaded)")
    )
    memory_budget: str | None = Field(
        None, **_flag("most weight bytes loaded at once, e.g. 8GiB or 500MB (least recently used unloaded)")
    )
    enable_repository_api: bool = Field(
        False, **_flag("serve /v2/repository/* (index, load, unload): loading is a privileged act")
    )

    # Tokenization and outputs.
    max_length: int | None = Field(
        None, ge=2, **_flag("longest input in tokens (default: what the model allows)", "--max_model_len")
    )
    disable_lower_case: bool = Field(False, **_flag("do not lower-case inputs even if the tokenizer would"))
    return_probabilities: bool = Field(
        False, **_flag("KServe outputs carry the probability of every token at each mask")
    )
    return_logits: bool = Field(
        False,
        **_flag("KServe outputs carry the raw logit of every token at each mask", "--return_raw_logits"),
    )

    # Compute.
    dtype: Dtype = Field("auto", **_flag("weights dtype; auto is float16 on CUDA, float32 on CPU"))
    device: Device = Field("auto", **_flag("where the model runs; auto picks CUDA when present"))
    backend: Backend = Field(
        "auto", **_flag("torch or onnx (ONNX Runtime); auto and KServe's huggingface mean torch")
    )
    quantize: Quantize = Field(
        "none", **_flag("int8: int8 encoder weights (CPU, opt-in; docs/benchmarks.md)")
    )
    quantize_calibration: str | None = Field(
        None, **_flag("text file (one sentence a line) to calibrate int8 with (default: the packaged set)")
    )
    threads: int | None = Field(
        None,
        ge=1,
        **_flag("the model's intra-op threads, shared among the model workers (default: the usable cores)"),
    )
    model_workers: int = Field(
        1, ge=1, le=64, **_flag("batches computed at once, each on its own thread (see docs/batching.md)")
    )
    onnx_cache_dir: str | None = Field(
        None, **_flag("where exported ONNX models are kept (default: beside it)")
    )

    # Batching and admission control (see docs/batching.md for how the defaults were chosen).
    max_batch_size: int = Field(32, ge=1, **_flag("most inputs in one model batch"))
    max_batch_tokens: int = Field(4096, ge=1, **_flag("most padded tokens (inputs x longest) in one batch"))
    max_batch_delay_ms: float = Field(
        10.0, ge=0, **_flag("longest wait for the inputs a busy server expects, in ms")
    )
    max_queue: int = Field(1024, ge=1, **_flag("inputs allowed to wait; beyond it requests get 429"))

    # Transport.
    enable_playground: bool = Field(
        True, **_flag("serve /playground, a page to try the models in a browser (it calls the HF API route)")
    )
    host: str = Field("0.0.0.0", **_flag("address the servers bind to"))
    http_port: int = Field(8080, ge=0, le=65535, **_flag("HTTP port (KServe V1, V2 REST, HF Inference API)"))
    grpc_port: int = Field(8081, ge=0, le=65535, **_flag("gRPC port (Open Inference Protocol)"))
    enable_grpc: bool = Field(True, **_flag("serve the Open Inference Protocol over gRPC too"))
    grpc_max_send_message_length: int = Field(8 * 1024 * 1024, ge=1024, **_flag("largest gRPC answer, bytes"))
    grpc_max_receive_message_length: int = Field(
        8 * 1024 * 1024, ge=1024, **_flag("largest gRPC request, bytes")
    )

    # Access control. Keys are secrets: never in a repr, a log line or an error message.
    api_key: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        repr=False,
        **_flag("accepted API key (repeat the flag for several; env: comma-separated); none: open server"),
    )
    api_key_file: str | None = Field(None, **_flag("file with accepted API keys, one per line"))
    protect_health: bool = Field(False, **_flag("require a key for health and metrics routes too"))

    # Request limits (each over-limit request gets a 4xx that names the limit and its flag).
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024, **_flag("largest HTTP request body, bytes"))
    max_response_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        **_flag("largest HTTP answer, bytes, checked before computing (gRPC: grpc_max_send_message_length)"),
    )
    max_inputs: int = Field(256, ge=1, **_flag("most texts in one request"))
    # The word algorithms (docs/words.md) cost several forward passes per request; these bound them.
    max_subwords: int = Field(8, ge=1, le=8, **_flag("largest max_subwords a whole_word request may ask for"))
    max_beams: int = Field(
        32, ge=1, le=32, **_flag("largest num_beams a whole_word or joint request may ask for")
    )
    max_decode_rows: int = Field(
        1024, ge=1, **_flag("most forward rows (sequences) the word algorithms may run for one request")
    )
    max_masks: int = Field(64, ge=1, **_flag("most mask tokens in one text"))
    truncation: bool = Field(
        True, **_flag("cut texts longer than max_length (as KServe); false answers 400 instead")
    )
    request_timeout_s: float = Field(
        60.0, ge=0, **_flag("longest a request may wait for the model, seconds (504 after; 0: no limit)")
    )
    max_wait_for_model_s: float = Field(
        300.0, ge=0, **_flag("longest a request with x-wait-for-model waits for loading, seconds")
    )

    # Response cache (hits skip the model; x-use-cache: false bypasses it).
    cache_size: int = Field(1024, ge=0, **_flag("responses kept in the response cache (0 disables it)"))
    cache_max_bytes: int = Field(64 * 1024 * 1024, ge=0, **_flag("largest response cache, bytes"))

    # Process.
    grace_period: float = Field(
        30.0, ge=0, **_flag("seconds to finish in-flight requests after SIGTERM before exiting")
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", **_flag("log level"))
    log_format: Literal["text", "json"] = Field("text", **_flag("log line format"))
    log_requests: bool = Field(False, **_flag("include request bodies (the texts) in access log lines"))

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(m.strip() for m in value.split(",") if m.strip())
        return value

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for spec in value:
            name, sep, uri = spec.partition("=")
            if not sep or not uri.strip() or not _MODEL_NAME.fullmatch(name.strip()):
                raise ValueError(
                    f"--model takes NAME=URI with a name of letters, digits, '.', '_' or '-', got {spec!r}"
                )
        return value

    @field_validator("memory_budget")
    @classmethod
    def _check_budget(cls, value: str | None) -> str | None:
        if value is not None:
            parse_bytes(value)
        return value

    def model_specs(self) -> list[tuple[str, str]]:
        """``--model NAME=URI`` as (name, uri) pairs."""
        return [(n.strip(), u.strip()) for n, _, u in (spec.partition("=") for spec in self.models)]

    @property
    def several_models(self) -> bool:
        """Serving a repository (or on-demand Hub ids) rather than KServe's one model."""
        return bool(self.model_repository or self.models or self.hub_models)

    def hub_patterns(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in (self.hub_models or "").split(",") if p.strip())

    def memory_budget_bytes(self) -> int | None:
        return parse_bytes(self.memory_budget) if self.memory_budget else None

    @field_validator("api_key", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        # From the environment the keys arrive as one comma-separated string.
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    def api_keys(self) -> frozenset[str]:
        """Every accepted key: --api_key values and the lines of --api_key_file (but blanks and # lines)."""
        keys = set(self.api_key)
        if self.api_key_file:
            try:
                text = Path(self.api_key_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"cannot read --api_key_file {self.api_key_file}: {exc.strerror}") from exc
            keys.update(
                line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
            )
        return frozenset(keys)

    @model_validator(mode="after")
    def _one_output_mode(self) -> Settings:
        if self.return_probabilities and self.return_logits:
            raise ValueError("choose one of --return_probabilities and --return_logits, not both")
        return self

    @property
    def output_mode(self) -> OutputMode:
        if self.return_logits:
            return OutputMode.LOGITS
        if self.return_probabilities:
            return OutputMode.PROBABILITIES
        return OutputMode.TOP1

    def model_source(self) -> str:
        """The positional MODEL, else --model_id, else --model_dir (KServe prefers model_id to model_dir)."""
        if self.model:
            return self.model
        if self.model_id:
            return self.model_id
        model_dir = Path(self.model_dir)
        if model_dir.is_dir() and any(model_dir.iterdir()):
            return str(model_dir)
        raise ValueError(
            f"no model to serve: pass MODEL or --model_id, or put a model in --model_dir ({self.model_dir} "
            "is missing or empty)"
        )
