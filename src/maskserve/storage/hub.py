"""Hugging Face Hub sources (``hf://org/name[@rev]`` and bare ids), fetched into huggingface_hub's cache."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, constants, get_cached_repo_tree, snapshot_download
from huggingface_hub.errors import (
    CachedRepoTreeNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]  # public, lazily exported

from maskserve.errors import ModelLoadError, ModelNotFoundError, UpstreamError

__all__ = ["HubRef", "parse_hub_ref", "snapshot"]

_HF_SCHEME = "hf://"
_HF_REF = re.compile(r"(?P<repo>[^@:]+)(?:[@:](?P<rev>.+))?")

# Everything a fill-mask server loads besides the weights: config and every tokenizer flavour.
_BASE_PATTERNS = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "added_tokens.json",
]
_SAFETENSORS_PATTERNS = ["*.safetensors", "*.safetensors.index.json"]
_BIN_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
_TRANSPORT_MODULES = {"httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3"}


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None


def parse_hub_ref(source: str) -> HubRef | None:
    """Return the Hub reference named by ``source``, or None when it names a local path or another URI.

    ``hf://org/name``, ``hf://org/name@rev`` and ``hf://org/name:rev`` are always Hub references (a malformed
    one raises ModelLoadError); a bare ``org/name`` or ``name`` is one only if no such local path exists.
    """
    if source[: len(_HF_SCHEME)].lower() == _HF_SCHEME:
        match = _HF_REF.fullmatch(source[len(_HF_SCHEME) :])
        if match is None or not _is_repo_id(match["repo"]):
            raise ModelLoadError(f"invalid Hub reference {source!r}: expected hf://org/name[@revision]")
        return HubRef(match["repo"], match["rev"])
    if "://" in source or source.startswith("file:") or Path(source).expanduser().exists():
        return None
    if not _is_repo_id(source):
        return None
    return HubRef(source, None)


def _is_repo_id(candidate: str) -> bool:
    try:
        validate_repo_id(candidate)
    except HFValidationError:
        return False
    return True


def snapshot(
    repo_id: str, revision: str | None, cache_dir: Path | None, token: str | None, endpoint: str | None
) -> Path:
    """The snapshot directory of ``repo_id`` in the Hub cache, holding the config, tokenizer files and one
    weights format (safetensors if the repo has it, else pytorch_model.bin); nothing below the top level.

    huggingface_hub shows its progress bars and resumes a partial file (``*.incomplete`` in the cache) on
    the next attempt; neither is turned off here.
    """
    hub, api = endpoint or constants.ENDPOINT, HfApi(endpoint=endpoint, token=token)
    # model_info makes a single attempt, unlike list_repo_files whose pagination retries for ~20 s when the
    # Hub is unreachable; its siblings are the repo's file list at that revision.
    try:
        info = api.model_info(repo_id, revision=revision)
        files: list[str] | None = (
            [s.rfilename for s in info.siblings]
            if info.siblings is not None
            else api.list_repo_files(repo_id, revision=revision)
        )
    except Exception as exc:
        if not _is_network_error(exc):
            raise _hub_error(exc, repo_id, revision, hub) from exc
        # Offline or unreachable: a previous download left the file list in the cache, and choosing the
        # weights from it keeps snapshot_download from declaring a safetensors-only snapshot incomplete.
        files = _cached_files(repo_id, revision, cache_dir)
    try:
        snapshot = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            endpoint=endpoint,
            allow_patterns=_allow_patterns(repo_id, files),
            # transformers reads only the top of a model directory: skip onnx/, openvino/ and other exports
            ignore_patterns=["*/*"],
        )
    except Exception as exc:
        raise _hub_error(exc, repo_id, revision, hub) from exc
    return Path(snapshot)


def _cached_files(repo_id: str, revision: str | None, cache_dir: Path | None) -> list[str] | None:
    try:
        return [f.path for f in get_cached_repo_tree(repo_id, revision=revision, cache_dir=cache_dir)]
    except CachedRepoTreeNotFoundError:
        return None


def _allow_patterns(repo_id: str, files: list[str] | None) -> list[str]:
    if files is None:  # file list unknown: let the cached snapshot decide which weights it holds
        return [*_BASE_PATTERNS, *_SAFETENSORS_PATTERNS, *_BIN_PATTERNS]
    top = [f for f in files if "/" not in f]
    if any(f.endswith(".safetensors") for f in top):
        return [*_BASE_PATTERNS, *_SAFETENSORS_PATTERNS]
    if any(f.startswith("pytorch_model") and f.endswith((".bin", ".bin.index.json")) for f in top):
        return [*_BASE_PATTERNS, *_BIN_PATTERNS]
    raise ModelLoadError(f"model {repo_id!r} on the Hub has no *.safetensors or pytorch_model.bin weights")


def _is_network_error(exc: BaseException) -> bool:
    # huggingface_hub's HTTP client differs between major versions (requests, httpx, httpx2) and is not ours
    # to import, so its transport errors are recognised by module. OfflineModeIsEnabled is a ConnectionError.
    if isinstance(exc, HfHubHTTPError):
        return False
    root_module = type(exc).__module__.split(".", 1)[0]
    return isinstance(exc, (ConnectionError, TimeoutError)) or root_module in _TRANSPORT_MODULES


def _hub_error(exc: Exception, repo_id: str, revision: str | None, hub: str) -> ModelLoadError:
    if isinstance(exc, ModelLoadError):
        return exc
    if isinstance(exc, RevisionNotFoundError):
        return ModelNotFoundError(
            f"revision {revision or 'main'!r} of model {repo_id!r} was not found on the Hugging Face Hub "
            f"at {hub}"
        )
    status = exc.response.status_code if isinstance(exc, HfHubHTTPError) else None
    if isinstance(exc, RepositoryNotFoundError) or status in (401, 403):
        return ModelNotFoundError(
            f"model {repo_id!r} was not found on the Hugging Face Hub at {hub}, or access to it was refused"
            f"{f' (HTTP {status})' if status else ''}; check the model id, and for a private or gated model "
            "set HF_TOKEN to a token that may read it"
        )
    if status is not None:
        return UpstreamError(f"the Hugging Face Hub at {hub} answered HTTP {status} for {repo_id!r}: {exc}")
    if isinstance(exc, LocalEntryNotFoundError) or _is_network_error(exc):
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = "offline mode is on (HF_HUB_OFFLINE)" if constants.is_offline_mode() else detail
        return UpstreamError(
            f"cannot reach the Hugging Face Hub at {hub} to fetch model {repo_id!r} and no complete cached "
            f"copy was found ({reason}); point the server at a local model directory, or pre-download the "
            "model into the cache and run with HF_HUB_OFFLINE=1"
        )
    return UpstreamError(f"could not fetch model {repo_id!r} from the Hugging Face Hub at {hub}: {exc}")
