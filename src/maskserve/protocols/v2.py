"""The Open Inference Protocol (KServe V2): request and response models shared by REST and gRPC."""

from __future__ import annotations

import math
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maskserve.domain import (
    TASK_KSERVE_FILL_MASK,
    TASK_SCORE,
    InputPredictions,
    KServeValue,
    ModelInfo,
    Prediction,
    SentenceScore,
    TaskCall,
)
from maskserve.errors import BadRequest, clip, preview
from maskserve.params import FillMaskParams, ScoreParams
from maskserve.protocols.common import dumps, load_json, type_name
from maskserve.protocols.hf import render_input
from maskserve.protocols.params import kserve_call, parse_params, task_of

KSERVE_OUTPUT = "output-0"
TOPK_OUTPUTS = ("token_str", "score", "token", "sequence")
_TOPK_DATATYPES = {"token_str": "BYTES", "score": "FP32", "token": "INT64", "sequence": "BYTES"}
# A score's outputs (task "score"): one element per input.
_SCORE_DATATYPES = {"score": "FP64", "num_tokens": "INT64", "pseudo_perplexity": "FP64", "output-0": "BYTES"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class MetadataTensor(_Model):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(_Model):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(_Model):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor] = Field(default_factory=list)
    outputs: list[MetadataTensor] = Field(default_factory=list)


class RequestInput(_Model):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(_Model):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Model):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Model):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class InferenceResponse(_Model):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    extra = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"invalid inference request: '{where}': {first['msg']}{extra}"


def parse_infer_payload(payload: Any) -> InferenceRequest:
    if not isinstance(payload, dict):
        raise BadRequest(f'the body must be a JSON object like {{"inputs": [...]}}, got {type_name(payload)}')
    try:
        return InferenceRequest.model_validate(payload)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from exc


def parse_infer_request(body: bytes) -> InferenceRequest:
    return parse_infer_payload(load_json(body))


_MAX_DEPTH = 32


def _flatten(data: Any, name: str) -> list[Any]:
    """Row-major flattening without recursion, so a hostile nesting depth is a 400, not a crash."""
    flat: list[Any] = []
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, list):
            flat.append(item)
            continue
        if depth >= _MAX_DEPTH:
            raise BadRequest(f"input '{name}' data is nested more than {_MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in reversed(item))
    return flat


def decode_texts(request: InferenceRequest) -> list[str]:
    """The texts of the one BYTES input tensor (flattened row-major, nested or not)."""
    if len(request.inputs) != 1:
        raise BadRequest(f"expected exactly one input tensor of texts, got {len(request.inputs)}")
    tensor = request.inputs[0]
    name, shape = clip(tensor.name), clip(str(tensor.shape))
    if tensor.datatype.upper() != "BYTES":
        raise BadRequest(f"input '{name}' has datatype {clip(tensor.datatype)}; texts must be sent as BYTES")
    if any(d < 0 for d in tensor.shape):
        raise BadRequest(f"input '{name}' has a negative dimension in shape {shape}")
    elements = _flatten(tensor.data, name)
    expected = math.prod(tensor.shape)
    if expected != len(elements):
        raise BadRequest(
            f"input '{name}' has shape {shape} ({clip(str(expected))} elements) "
            f"but {len(elements)} data elements"
        )
    if not elements:
        raise BadRequest(f"input '{name}' is empty; send at least one text")
    texts: list[str] = []
    for index, item in enumerate(elements):
        text = item
        if isinstance(item, bytes):
            try:
                text = item.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(f"input '{name}' element {index} is not valid UTF-8") from exc
        if not isinstance(text, str):
            raise BadRequest(f"input '{name}' element {index} must be a string, got {type_name(text)}")
        texts.append(text)
    return texts


def requested_topk(request: InferenceRequest) -> list[str] | None:
    """The top-k outputs the request names, None when it wants KServe's ``output-0``."""
    if not request.outputs:
        return None
    names = [o.name for o in request.outputs]
    known = {KSERVE_OUTPUT, *TOPK_OUTPUTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadRequest(f"unknown output {preview(unknown[0])}; this model has outputs {sorted(known)}")
    topk = [n for n in names if n in TOPK_OUTPUTS]
    if topk and KSERVE_OUTPUT in names:
        raise BadRequest(f"ask for '{KSERVE_OUTPUT}' or for the top-k outputs {list(TOPK_OUTPUTS)}, not both")
    return topk or None


def request_params(request: InferenceRequest) -> FillMaskParams | None:
    return parse_params(request.parameters)


def task_call(request: InferenceRequest) -> TaskCall:
    """What the request asks for: a score with ``"task": "score"``; the pipeline's candidates when it names
    top-k outputs or passes fill-mask parameters; KServe's ``output-0`` otherwise."""
    texts = decode_texts(request)
    if task_of(request.parameters) is ScoreParams:
        call = kserve_call(texts, request.parameters)
        score_outputs(request, call.params)  # asked-for outputs checked before compute
        return call
    return kserve_call(texts, request.parameters, candidates=requested_topk(request) is not None)


def score_outputs(request: InferenceRequest, params: ScoreParams) -> list[str]:
    """The outputs of a score answer: those the request names, else ``score`` and ``num_tokens``, and
    ``output-0`` (each input's answer as JSON) when tokens or words are asked for."""
    if request.outputs:
        names = [o.name for o in request.outputs]
        unknown = [n for n in names if n not in _SCORE_DATATYPES]
        if unknown:
            raise BadRequest(
                f"unknown output {preview(unknown[0])} for a score; its outputs are {list(_SCORE_DATATYPES)}"
            )
        return names
    return ["score", "num_tokens"] + ([KSERVE_OUTPUT] if params.tokens or params.words else [])


def render_scores(
    info: ModelInfo, request: InferenceRequest, params: ScoreParams, results: list[SentenceScore]
) -> InferenceResponse:
    columns: dict[str, list[Any]] = {
        "score": [r.score for r in results],
        "num_tokens": [r.num_tokens for r in results],
        "pseudo_perplexity": [r.pseudo_perplexity for r in results],
        KSERVE_OUTPUT: [dumps(r.as_dict()).decode() for r in results],
    }
    outputs = [
        ResponseOutput(name=n, shape=[len(results)], datatype=_SCORE_DATATYPES[n], data=columns[n])
        for n in score_outputs(request, params)
    ]
    return _response(info, request, outputs)


def render(
    info: ModelInfo, request: InferenceRequest, call: TaskCall, results: list[Any]
) -> InferenceResponse:
    """The response to ``call``'s answers, in the outputs the request asked for."""
    if call.task == TASK_SCORE:
        return render_scores(info, request, call.params, results)
    if call.task == TASK_KSERVE_FILL_MASK:
        return render_kserve_values(info, request, results)
    topk = requested_topk(request)
    if topk is not None:
        return render_topk(info, request, results, topk)
    return render_candidates_json(info, request, results)


def _response(info: ModelInfo, request: InferenceRequest, outputs: list[ResponseOutput]) -> InferenceResponse:
    return InferenceResponse(model_name=info.name, id=request.id or str(uuid.uuid4()), outputs=outputs)


def render_kserve_values(
    info: ModelInfo, request: InferenceRequest, values: list[KServeValue]
) -> InferenceResponse:
    """KServe's ``output-0``: top-1 strings, or each input's distribution as a JSON string."""
    data = [v if isinstance(v, str) else dumps(v).decode() for v in values]
    return _response(
        info, request, [ResponseOutput(name=KSERVE_OUTPUT, shape=[len(data)], datatype="BYTES", data=data)]
    )


def render_candidates_json(
    info: ModelInfo, request: InferenceRequest, results: list[InputPredictions]
) -> InferenceResponse:
    """``output-0`` where each element is that input's pipeline answer as JSON (top_k/targets given)."""
    data = [dumps(render_input(r)).decode() for r in results]
    return _response(
        info, request, [ResponseOutput(name=KSERVE_OUTPUT, shape=[len(data)], datatype="BYTES", data=data)]
    )


def render_topk(
    info: ModelInfo, request: InferenceRequest, results: list[InputPredictions], names: list[str]
) -> InferenceResponse:
    """Top-k tensors: shape [N, k] for one mask per input, [N, M, k] when every input has M masks."""
    mask_counts = {len(r) for r in results}
    if len(mask_counts) != 1:
        raise BadRequest(
            "top-k outputs need the same number of masks in every input (found "
            f"{sorted(mask_counts)}); send inputs with different mask counts in separate requests"
        )
    masks = mask_counts.pop()
    k = len(results[0][0])
    flat: list[Prediction] = []
    for r in results:
        for candidates in r:
            if len(candidates) != k:
                raise BadRequest(
                    "top-k outputs need as many candidates for every mask (found "
                    f"{k} and {len(candidates)}); ask for output-0 to get each input's own list"
                )
            for p in candidates:
                if not isinstance(p, Prediction):
                    raise BadRequest(
                        "a joint decoding answers each input with one list of hypotheses; ask for "
                        "output-0 (each input's answer as JSON) instead of top-k outputs"
                    )
                flat.append(p)
    shape = [len(results), k] if masks == 1 else [len(results), masks, k]
    columns: dict[str, list[Any]] = {
        "token_str": [p.token_str for p in flat],
        "score": [p.score for p in flat],
        "token": [p.token for p in flat],
        "sequence": [p.sequence for p in flat],
    }
    outputs = [
        ResponseOutput(name=n, shape=shape, datatype=_TOPK_DATATYPES[n], data=columns[n]) for n in names
    ]
    return _response(info, request, outputs)


# The model repository extension's states for maskserve's (a failed model is UNAVAILABLE with its reason; a
# stopping server's models are UNLOADING).
_REPOSITORY_STATES = {
    "unavailable": "UNAVAILABLE",
    "loading": "LOADING",
    "ready": "READY",
    "unloading": "UNLOADING",
    "failed": "UNAVAILABLE",
    "stopping": "UNLOADING",
}


def repository_index(states: list[tuple[str, str, str | None]]) -> list[dict[str, str]]:
    """The repository index from (name, state, error) per model."""
    return [
        {
            "name": name,
            "version": "",
            "state": _REPOSITORY_STATES[state],
            "reason": f"failed to load: {error}" if state == "failed" else "",
        }
        for name, state, error in states
    ]


def server_metadata(version: str, extensions: list[str]) -> ServerMetadata:
    return ServerMetadata(name="maskserve", version=version, extensions=extensions)


def model_metadata(info: ModelInfo) -> ModelMetadata:
    platform = info.platform or info.backend
    outputs = [MetadataTensor(name=KSERVE_OUTPUT, datatype="BYTES", shape=[-1])]
    outputs += [MetadataTensor(name=n, datatype=_TOPK_DATATYPES[n], shape=[-1, -1]) for n in TOPK_OUTPUTS]
    return ModelMetadata(
        name=info.name,
        versions=[],
        platform=platform,
        inputs=[MetadataTensor(name="input-0", datatype="BYTES", shape=[-1])],
        outputs=outputs,
    )
