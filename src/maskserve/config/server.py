"""A server's settings: every served model's defaults, and the server's own (transport, access, limits)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from maskserve.config.fields import MODEL_NAME, comma_list, parse_bytes
from maskserve.config.fields import flag as _flag
from maskserve.config.model import ModelSettings
from maskserve.domain import OutputMode
from maskserve.params import MAX_NUM_BEAMS, MAX_SUBWORDS


class Settings(ModelSettings):
    """A server's settings: every model's (the defaults of each served model) and the server's own."""

    # Several models in one process (docs/repository.md). Without these, one model, as KServe runs it.
    model_repository: str | None = Field(
        None,
        **_flag(
            "folder of models, one per subfolder (written by save_pretrained), served by folder name",
            group="repository",
        ),
    )
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        **_flag(
            "NAME=URI: serve the model at URI as NAME (repeat for several, or comma-separated)",
            "--model",
            group="repository",
        ),
    )
    hub_models: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        **_flag(
            "Hub ids that may be loaded on request, as globs: 'google-bert/*,FacebookAI/roberta-base'",
            group="repository",
        ),
    )
    max_models: int | None = Field(
        None, ge=1, **_flag("most models loaded at once (least recently used unloaded)", group="repository")
    )
    memory_budget: str | None = Field(
        None,
        **_flag(
            "most weight bytes loaded at once, e.g. 8GiB or 500MB (least recently used unloaded)",
            group="repository",
        ),
    )
    enable_repository_api: bool = Field(
        False,
        **_flag(
            "serve /v2/repository/* (index, load, unload): loading is a privileged act", group="repository"
        ),
    )
    max_wait_for_model_s: float = Field(
        300.0,
        ge=0,
        **_flag("longest a request with x-wait-for-model waits for loading, seconds", group="repository"),
    )

    # Outputs.
    return_probabilities: bool = Field(
        False, **_flag("KServe outputs carry the probability of every token at each mask", group="outputs")
    )
    return_logits: bool = Field(
        False,
        **_flag(
            "KServe outputs carry the raw logit of every token at each mask",
            "--return_raw_logits",
            group="outputs",
        ),
    )

    # Transport.
    enable_playground: bool = Field(
        True,
        **_flag(
            "serve /playground, a page to try the models in a browser (it calls the HF API route)",
            group="transport",
        ),
    )
    host: str = Field("0.0.0.0", **_flag("address the servers bind to", group="transport"))
    http_port: int = Field(
        8080, ge=0, le=65535, **_flag("HTTP port (KServe V1, V2 REST, HF Inference API)", group="transport")
    )
    grpc_port: int = Field(
        8081, ge=0, le=65535, **_flag("gRPC port (Open Inference Protocol)", group="transport")
    )
    enable_grpc: bool = Field(
        True, **_flag("serve the Open Inference Protocol over gRPC too", group="transport")
    )
    grpc_max_send_message_length: int = Field(
        8 * 1024 * 1024, ge=1024, **_flag("largest gRPC answer, bytes", group="transport")
    )
    grpc_max_receive_message_length: int = Field(
        8 * 1024 * 1024, ge=1024, **_flag("largest gRPC request, bytes", group="transport")
    )

    # Access control. Keys are secrets: never in a repr, a log line or an error message.
    api_key: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        repr=False,
        **_flag(
            "accepted API key (repeat the flag for several, or comma-separated); none: open server",
            group="access",
        ),
    )
    api_key_file: str | None = Field(
        None, **_flag("file with accepted API keys, one per line", group="access")
    )
    protect_health: bool = Field(
        False, **_flag("require a key for health and metrics routes too", group="access")
    )

    # Request limits (each over-limit request gets a 4xx that names the limit and its flag).
    max_request_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, **_flag("largest HTTP request body, bytes", group="limits")
    )
    max_response_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        **_flag(
            "largest HTTP answer, bytes, checked before computing (gRPC: grpc_max_send_message_length)",
            group="limits",
        ),
    )
    max_inputs: int = Field(256, ge=1, **_flag("most texts in one request", group="limits"))
    # The word algorithms (docs/words.md) cost several forward passes per request; these bound them.
    max_subwords: int = Field(
        MAX_SUBWORDS,
        ge=1,
        le=MAX_SUBWORDS,
        **_flag("largest max_subwords a whole_word request may ask for", group="limits"),
    )
    max_beams: int = Field(
        MAX_NUM_BEAMS,
        ge=1,
        le=MAX_NUM_BEAMS,
        **_flag("largest num_beams a whole_word or joint request may ask for", group="limits"),
    )
    max_decode_rows: int = Field(
        1024,
        ge=1,
        **_flag("most forward rows (sequences) the word algorithms may run for one request", group="limits"),
    )
    max_masks: int = Field(64, ge=1, **_flag("most mask tokens in one text", group="limits"))
    max_score_tokens: int = Field(
        512,
        ge=1,
        **_flag("most tokens of one text a sentence score may score (a forward row each)", group="limits"),
    )
    request_timeout_s: float = Field(
        60.0,
        ge=0,
        **_flag("longest a request may wait for the model, seconds (504 after; 0: no limit)", group="limits"),
    )

    # Response cache (hits skip the model; x-use-cache: false bypasses it).
    cache_size: int = Field(
        1024, ge=0, **_flag("responses kept in the response cache (0 disables it)", group="cache")
    )
    cache_max_bytes: int = Field(
        64 * 1024 * 1024, ge=0, **_flag("largest response cache, bytes", group="cache")
    )

    # Logging and process.
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", **_flag("log level", group="logging")
    )
    log_format: Literal["text", "json"] = Field("text", **_flag("log line format", group="logging"))
    log_requests: bool = Field(
        False, **_flag("include request bodies (the texts) in access log lines", group="process")
    )
    grace_period: float = Field(
        30.0,
        ge=0,
        **_flag("seconds to finish in-flight requests after SIGTERM before exiting", group="process"),
    )

    _split_lists = field_validator("models", "hub_models", "api_key", mode="before")(comma_list)

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for spec in value:
            name, sep, uri = spec.partition("=")
            if not sep or not uri.strip() or not MODEL_NAME.fullmatch(name.strip()):
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

    @model_validator(mode="after")
    def _one_output_mode(self) -> Settings:
        if self.return_probabilities and self.return_logits:
            raise ValueError("choose one of --return_probabilities and --return_logits, not both")
        return self

    def model_specs(self) -> list[tuple[str, str]]:
        """``--model NAME=URI`` as (name, uri) pairs."""
        return [(n.strip(), u.strip()) for n, _, u in (spec.partition("=") for spec in self.models)]

    @property
    def several_models(self) -> bool:
        """Serving a repository (or on-demand Hub ids) rather than KServe's one model."""
        return bool(self.model_repository or self.models or self.hub_models)

    def memory_budget_bytes(self) -> int | None:
        return parse_bytes(self.memory_budget) if self.memory_budget else None

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

    @property
    def output_mode(self) -> OutputMode:
        if self.return_logits:
            return OutputMode.LOGITS
        if self.return_probabilities:
            return OutputMode.PROBABILITIES
        return OutputMode.TOP1

    def model_settings(self, source: str | None = None, name: str | None = None) -> ModelSettings:
        """A served model's settings: the server's model flags, for the model at ``source`` served as
        ``name`` when given (a repository's model), else the KServe-style one the flags name."""
        values = {key: getattr(self, key) for key in ModelSettings.model_fields}
        if source is not None:
            values.update(model=source, model_name=name or self.model_name, model_id=None)
        return ModelSettings.model_construct(**values)
