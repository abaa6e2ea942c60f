"""One model's settings: where it comes from, how it is tokenized, computed and batched."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from maskserve.config.fields import Backend, Device, Dtype, Quantize
from maskserve.config.fields import flag as _flag


class ModelSettings(BaseSettings):
    """One model: where it comes from, how it is tokenized, computed and batched. A server makes one per
    served model from its own settings (:meth:`Settings.model_settings`); a batch job uses it alone."""

    model_config = SettingsConfigDict(env_prefix="MASKSERVE_", extra="ignore", frozen=True)

    # What to serve. KServe passes --model_name and mounts the model at --model_dir; --model_id names a Hub
    # model. The positional MODEL (a directory, a Hub id or an hf:// URI) wins over both.
    model: str | None = Field(
        None, **_flag("model directory, Hub id or hf:// URI", group="model", positional=True)
    )
    model_name: str = Field("model", **_flag("name the model is served under", group="model"))
    model_dir: str = Field(
        "/mnt/models", **_flag("local model directory (KServe's storage mount)", group="model")
    )
    model_id: str | None = Field(
        None, **_flag("Hugging Face Hub model id, used when model_dir is empty", group="model")
    )
    model_revision: str | None = Field(
        None, **_flag("Hub revision (branch, tag or commit) of the model", "--revision", group="model")
    )
    tokenizer_revision: str | None = Field(None, **_flag("Hub revision of the tokenizer", group="model"))
    cache_dir: str | None = Field(
        None, **_flag("where Hub downloads are cached, and resume (default: HF_HOME)", group="model")
    )
    trust_remote_code: bool = Field(False, **_flag("allow model code from the Hub repository", group="model"))

    # Tokenization.
    max_length: int | None = Field(
        None,
        ge=2,
        **_flag(
            "longest input in tokens (default: what the model allows)", "--max_model_len", group="tokenize"
        ),
    )
    disable_lower_case: bool = Field(
        False, **_flag("do not lower-case inputs even if the tokenizer would", group="tokenize")
    )
    truncation: bool = Field(
        True,
        **_flag("cut texts longer than max_length (as KServe); false answers 400 instead", group="tokenize"),
    )

    # Compute.
    dtype: Dtype = Field(
        "auto", **_flag("weights dtype; auto is float16 on CUDA, float32 on CPU", group="compute")
    )
    device: Device = Field(
        "auto", **_flag("where the model runs; auto picks CUDA when present", group="compute")
    )
    backend: Backend = Field(
        "auto",
        **_flag(
            "torch, onnx (ONNX Runtime) or openvino (OpenVINO, CPU); auto (and KServe's huggingface) is "
            "ONNX Runtime on the CPU when it is installed (measured fastest here), torch on a GPU",
            group="compute",
        ),
    )
    quantize: Quantize = Field(
        "none", **_flag("int8: int8 encoder weights (CPU, opt-in; docs/benchmarks.md)", group="compute")
    )
    quantize_calibration: str | None = Field(
        None,
        **_flag(
            "text file (one sentence a line) to calibrate int8 with (default: the packaged set)",
            group="compute",
        ),
    )
    threads: int | None = Field(
        None,
        ge=1,
        **_flag(
            "the model's intra-op threads, shared among the model workers (default: the usable cores)",
            group="compute",
        ),
    )
    onnx_cache_dir: str | None = Field(
        None,
        **_flag(
            "where exported ONNX models are kept (default: an export beside the model, else "
            "$XDG_CACHE_HOME/maskserve)",
            group="compute",
        ),
    )

    # Batching and admission control (see docs/batching.md for how the defaults were chosen).
    model_workers: int = Field(
        1,
        ge=1,
        le=64,
        **_flag("batches computed at once, each on its own thread (see docs/batching.md)", group="batching"),
    )
    max_batch_size: int = Field(32, ge=1, **_flag("most inputs in one model batch", group="batching"))
    max_batch_tokens: int = Field(
        4096, ge=1, **_flag("most padded tokens (inputs x longest) in one batch", group="batching")
    )
    max_batch_delay_ms: float = Field(
        10.0, ge=0, **_flag("longest wait for the inputs a busy server expects, in ms", group="batching")
    )
    max_queue: int = Field(
        1024, ge=1, **_flag("inputs allowed to wait; beyond it requests get 429", group="batching")
    )

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
