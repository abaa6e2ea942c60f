"""The catalog of malformed and hostile requests: one table per transport, and how each case is sent.

Every case names the status (gRPC: the status code) it must get and words its error message must contain.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
from google.protobuf.message import Message

from maskserve.api.grpc._generated import grpc_predict_v2_pb2 as pb
from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from reliability.live import DEADLINE_S, MODEL

LIMIT = 65536
GRPC_LIMIT = 1024 * 1024
# The limits the catalog expects the server to run with: small, so that the oversized cases stay cheap.
LIMIT_FLAGS = (
    f"--max_request_bytes={LIMIT}",
    "--max_masks=64",
    "--max_inputs=256",
    f"--grpc_max_receive_message_length={GRPC_LIMIT}",
)
MASK = "[MASK]"
TEXT = "Paris is the [MASK] of France."
JSON = (("content-type", "application/json"),)
V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
HF = f"/models/{MODEL}"
IHCL = "Inference-Header-Content-Length"


# --- the case types ---


@dataclass(frozen=True)
class Http:
    """A request any HTTP client can send; the answer must be ``{"error": ...}`` JSON."""

    id: str
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    status: int = 400
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Raw:
    """Bytes written to a socket as they are: framing that HTTP clients refuse to produce."""

    id: str
    data: bytes
    status: int
    words: tuple[str, ...] = ()
    # False where uvicorn's HTTP parser refuses the request before the application runs: it answers with a
    # plain-text "Invalid HTTP request received." that maskserve cannot shape.
    from_app: bool = True


@dataclass(frozen=True)
class Grpc:
    id: str
    request: Message
    code: grpc.StatusCode
    words: tuple[str, ...] = ()
    method: str = "ModelInfer"


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def tensor(data: Any, shape: Any = None, datatype: str = "BYTES", **extra: Any) -> dict[str, Any]:
    size = len(data) if isinstance(data, list) else 1
    return {"name": "input-0", "shape": [size] if shape is None else shape, "datatype": datatype,
            "data": data, **extra}  # fmt: skip


def v2(*tensors: dict[str, Any], **extra: Any) -> bytes:
    return js({"inputs": list(tensors), **extra})


def elements(*texts: bytes) -> bytes:
    """A BYTES tensor's binary form: each element a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(t)) + t for t in texts)


def binary(
    case_id: str,
    tail: bytes,
    *,
    size: Any = None,
    header: str | None = None,
    status: int = 400,
    words: tuple[str, ...] = (),
    **input_extra: Any,
) -> Http:
    """A binary-extension request: the JSON header of one BYTES input whose data follows as ``tail``.
    ``size`` is the declared binary_data_size (default: the true one), ``header`` the declared
    Inference-Header-Content-Length (default: the true one)."""
    parameters = {"binary_data_size": len(tail) if size is None else size}
    head = {"name": "input-0", "shape": [1], "datatype": "BYTES", "parameters": parameters, **input_extra}
    raw_json = js({"inputs": [head]})
    declared = str(len(raw_json)) if header is None else header
    return Http(case_id, "POST", V2, raw_json + tail, ((IHCL, declared),), status, words)


def infer(
    texts: list[bytes] | None = None,
    *,
    shape: list[int] | None = None,
    datatype: str = "BYTES",
    raw: list[bytes] | None = None,
    params: dict[str, pb.InferParameter] | None = None,
    outputs: tuple[str, ...] = (),
    model: str = MODEL,
    version: str = "",
) -> pb.ModelInferRequest:
    texts = [TEXT.encode()] if texts is None else texts
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    dims = [len(texts)] if shape is None else shape
    sent = request.inputs.add(name="input-0", datatype=datatype, shape=dims)
    if raw is not None:
        request.raw_input_contents.extend(raw)
    elif datatype == "BYTES":
        sent.contents.bytes_contents.extend(texts)
    for key, value in (params or {}).items():
        request.parameters[key].CopyFrom(value)
    for name in outputs:
        request.outputs.add(name=name)
    return request


def fp32_typed() -> pb.ModelInferRequest:
    request = infer(datatype="FP32")
    request.inputs[0].contents.fp32_contents.extend([1.0])
    return request


def raw_and_typed() -> pb.ModelInferRequest:
    request = infer()
    request.raw_input_contents.append(ONE)
    return request


def p(**kwargs: Any) -> pb.InferParameter:
    """One InferParameter (a gRPC request parameter)."""
    return pb.InferParameter(**kwargs)


def chunked(total: int, piece: int = 16384) -> bytes:
    chunk = b"a" * piece
    count = -(-total // piece)
    return b"".join(b"%x\r\n%s\r\n" % (piece, chunk) for _ in range(count)) + b"0\r\n\r\n"


# --- the catalog ---

TEN_THOUSAND_MASKS = MASK * 10_000  # 60 000 bytes: under --max_request_bytes, far over --max_masks
LONG_TEXT = "word " * 2000 + MASK  # the mask sits far beyond max_length, so truncation cuts it off
ONE = elements(TEXT.encode())  # one good BYTES element in binary form
POST_V1 = b"POST " + V1.encode() + b" HTTP/1.1\r\nHost: x\r\n"

# fmt: off
HTTP_CASES: list[Http] = [
    # KServe V1
    Http("v1-broken-json", "POST", V1, b'{"instances": [', words=("JSON",)),
    Http("v1-empty-body", "POST", V1, b"", words=("empty",)),
    Http("v1-body-is-an-array", "POST", V1, b"[1, 2]", words=("object", "instances")),
    Http("v1-no-instances", "POST", V1, js({"texts": [TEXT]}), words=("instances",)),
    Http("v1-instances-is-a-string", "POST", V1, js({"instances": TEXT}), words=("instances", "list")),
    Http("v1-instance-is-a-number", "POST", V1, js({"instances": [TEXT, 7]}), words=("instances[1]",)),
    Http("v1-instances-empty", "POST", V1, js({"instances": []}), words=("empty",)),
    Http("v1-no-mask", "POST", V1, js({"instances": ["no mask here"]}), words=("mask",)),
    Http("v1-empty-string", "POST", V1, js({"instances": [""]}), words=("mask",)),
    Http("v1-ten-thousand-masks", "POST", V1, js({"instances": [TEN_THOUSAND_MASKS]}),
         words=("--max_masks",)),
    Http("v1-mask-cut-by-truncation", "POST", V1, js({"instances": [LONG_TEXT]}),
         words=("truncat", "max_length")),
    Http("v1-nul-byte", "POST", V1, js({"instances": ["a\x00 " + TEXT]}), words=("NUL",)),
    Http("v1-invalid-utf8", "POST", V1, b'{"instances": ["\xff\xfe [MASK]"]}', words=("UTF-8",)),
    Http("v1-too-many-inputs", "POST", V1, js({"instances": [TEXT] * 300}), words=("--max_inputs",)),
    Http("v1-huge-body", "POST", V1, js({"instances": ["a" * (LIMIT + 10) + MASK]}), status=413,
         words=("limit", "--max_request_bytes")),
    Http("v1-100000-nested-brackets", "POST", V1, b"[" * 100_000, status=413, words=("--max_request_bytes",)),
    Http("v1-60000-nested-brackets", "POST", V1, b"[" * 60_000, words=("JSON", "depth")),
    Http("v1-unknown-model", "POST", "/v1/models/nope:predict", js({"instances": [TEXT]}), status=404,
         words=("nope", "does not exist")),
    Http("v1-top_k-zero", "POST", V1, js({"instances": [TEXT], "parameters": {"top_k": 0}}),
         words=("top_k",)),
    Http("v1-top_k-1e30", "POST", V1, js({"instances": [TEXT], "parameters": {"top_k": 10**30}}),
         words=("top_k",)),
    Http("v1-parameters-is-an-array", "POST", V1, js({"instances": [TEXT], "parameters": [3]}),
         words=("parameters",)),
    Http("v1-form-encoded", "POST", V1, b"instances=a+%5BMASK%5D",
         (("content-type", "application/x-www-form-urlencoded"),), words=("JSON",)),
    Http("v1-metadata-unknown-model", "GET", "/v1/models/nope", status=404, words=("nope",)),
    # Hugging Face Inference API
    Http("hf-broken-json", "POST", HF, b'{"inputs": ', JSON, words=("JSON",)),
    Http("hf-json-type-plain-text-body", "POST", HF, b"the [MASK] is here", JSON, words=("JSON",)),
    Http("hf-no-inputs", "POST", HF, js({"input": TEXT}), JSON, words=("inputs",)),
    Http("hf-inputs-is-an-object", "POST", HF, js({"inputs": {"text": TEXT}}), JSON, words=("inputs",)),
    Http("hf-inputs-null", "POST", HF, js({"inputs": None}), JSON, words=("inputs",)),
    Http("hf-inputs-list-with-a-number", "POST", HF, js({"inputs": [TEXT, 1]}), JSON, words=("inputs[1]",)),
    Http("hf-plain-text-no-mask", "POST", HF, b"no mask at all", (("content-type", "text/plain"),),
         words=("mask",)),
    Http("hf-empty-string", "POST", HF, js({"inputs": ""}), JSON, words=("mask",)),
    Http("hf-invalid-utf8-text", "POST", HF, b"\xff\xfe [MASK]", (("content-type", "text/plain"),),
         words=("UTF-8",)),
    Http("hf-nul-byte", "POST", HF, js({"inputs": TEXT + "\x00"}), JSON, words=("NUL",)),
    Http("hf-lone-surrogate", "POST", HF, b'{"inputs": "\\ud800 [MASK]"}', JSON, words=("JSON", "surrogate")),
    Http("hf-ten-thousand-masks-as-text", "POST", HF, TEN_THOUSAND_MASKS.encode(),
         (("content-type", "text/plain"),), words=("--max_masks",)),
    Http("hf-top_k-minus-one", "POST", HF, js({"inputs": TEXT, "parameters": {"top_k": -1}}), JSON,
         words=("top_k",)),
    Http("hf-top_k-string", "POST", HF, js({"inputs": TEXT, "parameters": {"top_k": "3"}}), JSON,
         words=("top_k",)),
    Http("hf-top_k-fraction", "POST", HF, js({"inputs": TEXT, "parameters": {"top_k": 2.5}}), JSON,
         words=("top_k",)),
    Http("hf-top_k-boolean", "POST", HF, js({"inputs": TEXT, "parameters": {"top_k": True}}), JSON,
         words=("top_k",)),
    Http("hf-top_k-over-vocabulary", "POST", HF, js({"inputs": TEXT, "parameters": {"top_k": 10**9}}), JSON,
         words=("top_k", "vocabulary")),
    Http("hf-targets-number", "POST", HF, js({"inputs": TEXT, "parameters": {"targets": 5}}), JSON,
         words=("targets",)),
    Http("hf-targets-list-of-numbers", "POST", HF, js({"inputs": TEXT, "parameters": {"targets": [1, 2]}}),
         JSON, words=("targets",)),
    Http("hf-targets-empty", "POST", HF, js({"inputs": TEXT, "parameters": {"targets": []}}), JSON,
         words=("targets",)),
    Http("hf-targets-no-token", "POST", HF, js({"inputs": TEXT, "parameters": {"targets": ["\x00"]}}), JSON,
         words=("targets",)),
    Http("hf-top_k-60000-character-string", "POST", HF,
         js({"inputs": TEXT, "parameters": {"top_k": "9" * 60_000}}), JSON, words=("top_k",)),
    Http("hf-parameters-is-a-string", "POST", HF, js({"inputs": TEXT, "parameters": "top_k=3"}), JSON,
         words=("parameters",)),
    Http("hf-options-is-an-array", "POST", HF, js({"inputs": TEXT, "options": []}), JSON, words=("options",)),
    Http("hf-use_cache-not-boolean", "POST", HF, js({"inputs": TEXT, "options": {"use_cache": "yes"}}), JSON,
         words=("use_cache",)),
    Http("hf-bad-x-use-cache-header", "POST", HF, js({"inputs": TEXT}), (*JSON, ("x-use-cache", "maybe")),
         words=("x-use-cache",)),
    Http("hf-bad-x-wait-for-model-header", "POST", HF, js({"inputs": TEXT}),
         (*JSON, ("x-wait-for-model", "soon")), words=("x-wait-for-model",)),
    Http("hf-unknown-model", "POST", "/models/org/none", js({"inputs": TEXT}), JSON, status=404,
         words=("org/none",)),
    Http("hf-root-body-is-a-number", "POST", "/", b"42", JSON, words=("object", "inputs")),
    Http("hf-huge-text-body", "POST", HF, b"a" * (LIMIT + 1), (("content-type", "text/plain"),), status=413,
         words=("--max_request_bytes",)),
    Http("hf-60000-nested-brackets", "POST", HF, b'{"inputs": ' + b"[" * 60_000, JSON, words=("depth",)),
    # Open Inference Protocol, JSON
    Http("v2-broken-json", "POST", V2, b'{"inputs": [{', words=("JSON",)),
    Http("v2-no-inputs", "POST", V2, b"{}", words=("inputs",)),
    Http("v2-inputs-is-an-object", "POST", V2, js({"inputs": tensor([TEXT])}), words=("inputs",)),
    Http("v2-shape-larger-than-data", "POST", V2, v2(tensor([TEXT], shape=[2])), words=("shape",)),
    Http("v2-shape-not-a-list", "POST", V2, v2(tensor([TEXT], shape="1")), words=("shape",)),
    Http("v2-negative-dimension", "POST", V2, v2(tensor([TEXT], shape=[-1])), words=("negative",)),
    Http("v2-fractional-dimension", "POST", V2, v2(tensor([TEXT], shape=[1.5])), words=("shape",)),
    Http("v2-huge-shape", "POST", V2, v2(tensor([TEXT], shape=[10**12, 10**12])), words=("shape",)),
    Http("v2-input-name-60000-characters", "POST", V2, v2(tensor([1], name="n" * 60_000)),
         words=("string",)),
    Http("v2-datatype-fp32", "POST", V2, v2(tensor([1.0], datatype="FP32")), words=("FP32", "BYTES")),
    Http("v2-data-numbers", "POST", V2, v2(tensor([1, 2])), words=("string",)),
    Http("v2-data-missing", "POST", V2, v2({"name": "input-0", "shape": [1], "datatype": "BYTES"}),
         words=("element 0",)),
    Http("v2-empty-tensor", "POST", V2, v2(tensor([], shape=[0])), words=("empty",)),
    Http("v2-two-input-tensors", "POST", V2, v2(tensor([TEXT]), tensor([TEXT])), words=("one input",)),
    # 1000 levels: under the JSON parser's depth limit, so the tensor check has to refuse it.
    Http("v2-data-nested-1000-deep", "POST", V2,
         v2(tensor(None)).replace(b"null", b"[" * 1000 + js(TEXT) + b"]" * 1000), words=("nested",)),
    Http("v2-60000-nested-brackets", "POST", V2, b'{"inputs": [{"data": ' + b"[" * 60_000, words=("depth",)),
    Http("v2-no-mask", "POST", V2, v2(tensor(["no mask"])), words=("mask",)),
    Http("v2-ten-thousand-masks", "POST", V2, v2(tensor([TEN_THOUSAND_MASKS])), words=("--max_masks",)),
    Http("v2-unknown-output", "POST", V2, v2(tensor([TEXT]), outputs=[{"name": "logits"}]),
         words=("output", "logits")),
    Http("v2-output-0-and-top-k-outputs", "POST", V2,
         v2(tensor([TEXT]), outputs=[{"name": "output-0"}, {"name": "score"}]), words=("not both",)),
    Http("v2-top-k-outputs-mixed-mask-counts", "POST", V2,
         v2(tensor([TEXT, f"{MASK} and {MASK}"]), outputs=[{"name": "score"}]), words=("masks",)),
    Http("v2-binary_data_output-not-boolean", "POST", V2,
         v2(tensor([TEXT]), parameters={"binary_data_output": "yes"}), words=("binary_data_output",)),
    Http("v2-top_k-zero", "POST", V2, v2(tensor([TEXT]), parameters={"top_k": 0}), words=("top_k",)),
    Http("v2-targets-wrong-type", "POST", V2, v2(tensor([TEXT]), parameters={"targets": {"a": 1}}),
         words=("targets",)),
    Http("v2-id-not-a-string", "POST", V2, v2(tensor([TEXT]), id=5), words=("'id'",)),
    Http("v2-multipart-body", "POST", V2, b"--x\r\n\r\nhello\r\n--x--",
         (("content-type", "multipart/form-data; boundary=x"),), words=("JSON",)),
    Http("v2-unknown-model", "POST", "/v2/models/nope/infer", v2(tensor([TEXT])), status=404,
         words=("nope",)),
    Http("v2-unknown-version", "POST", f"/v2/models/{MODEL}/versions/7/infer", v2(tensor([TEXT])), status=404,
         words=("version",)),
    Http("v2-metadata-unknown-model", "GET", "/v2/models/nope", status=404, words=("nope",)),
    Http("v2-ready-unknown-model", "GET", "/v2/models/nope/ready", status=404, words=("nope",)),
    # Open Inference Protocol, binary tensor data extension
    binary("bin-header-larger-than-body", ONE, header="100000", words=(IHCL,)),
    binary("bin-header-negative", ONE, header="-5", words=(IHCL, "negative")),
    binary("bin-header-not-a-number", ONE, header="twelve", words=(IHCL,)),
    binary("bin-header-5000-digits", ONE, header="9" * 5000, words=(IHCL,)),
    binary("bin-header-zero", ONE, header="0", words=("empty", IHCL)),
    binary("bin-header-cuts-the-json", ONE, header="20", words=("JSON", IHCL)),
    binary("bin-size-larger-than-data", ONE, size=1000, words=("too short", "binary_data_size")),
    binary("bin-size-smaller-than-data", ONE, size=4, words=("trailing", "binary_data_size")),
    binary("bin-size-is-a-string", ONE, size="36", words=("binary_data_size",)),
    binary("bin-size-negative", ONE, size=-1, words=("binary_data_size",)),
    binary("bin-length-prefix-lies", struct.pack("<I", 999) + TEXT.encode(), words=("length prefix",)),
    binary("bin-cut-inside-length-prefix", b"\x05\x00", words=("length prefix",)),
    binary("bin-invalid-utf8", elements(b"\xff\xfe\xfd [MASK]"), words=("UTF-8",)),
    binary("bin-more-elements-than-shape", elements(TEXT.encode(), TEXT.encode()), words=("shape",)),
    binary("bin-data-and-binary-both", ONE, words=("both",), data=[TEXT]),
    binary("bin-fp32-tensor", struct.pack("<f", 1.0), words=("BYTES",), datatype="FP32"),
    binary("bin-over-the-body-limit", elements(b"a" * LIMIT), status=413, words=("--max_request_bytes",)),
    # Anything else
    Http("http-unknown-route", "GET", "/v3/models", status=404, words=("not found",)),
    Http("http-wrong-method", "PUT", V2, v2(tensor([TEXT])), JSON, status=405, words=("method",)),
]

RAW_CASES: list[Raw] = [
    Raw("raw-chunked-body-over-the-limit",
        POST_V1 + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(2 * LIMIT),
        413, ("--max_request_bytes",)),
    Raw("raw-content-length-not-a-number",
        POST_V1 + b"Content-Length: abc\r\n\r\n{}", 400, from_app=False),
    Raw("raw-two-content-lengths",
        POST_V1 + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        400, from_app=False),
    Raw("raw-not-http", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n", 400,
        from_app=False),
]

INVALID = grpc.StatusCode.INVALID_ARGUMENT
GRPC_CASES: list[Grpc] = [
    Grpc("grpc-unknown-model", infer(model="nope"), grpc.StatusCode.NOT_FOUND, ("nope",)),
    Grpc("grpc-unknown-version", infer(version="2"), grpc.StatusCode.NOT_FOUND, ("version",)),
    Grpc("grpc-metadata-unknown-model", pb.ModelMetadataRequest(name="nope"), grpc.StatusCode.NOT_FOUND,
         ("nope",), method="ModelMetadata"),
    Grpc("grpc-ready-unknown-model", pb.ModelReadyRequest(name="nope"), grpc.StatusCode.NOT_FOUND, ("nope",),
         method="ModelReady"),
    Grpc("grpc-no-inputs", pb.ModelInferRequest(model_name=MODEL), INVALID, ("input",)),
    Grpc("grpc-fp32-input", fp32_typed(), INVALID, ("FP32", "BYTES")),
    Grpc("grpc-empty-datatype", infer(datatype=""), INVALID, ("BYTES",)),
    Grpc("grpc-unknown-datatype-raw", infer(datatype="TEXT", raw=[b"abc"]), INVALID, ("BYTES",)),
    Grpc("grpc-raw-entry-count-mismatch", infer(raw=[ONE, elements(b"x")]), INVALID,
         ("raw_input_contents",)),
    Grpc("grpc-raw-length-prefix-lies", infer(raw=[struct.pack("<I", 999) + TEXT.encode()]), INVALID,
         ("length prefix",)),
    Grpc("grpc-raw-cut-inside-length-prefix", infer(raw=[b"\x01\x00"]), INVALID, ("length prefix",)),
    Grpc("grpc-raw-and-typed-contents", raw_and_typed(), INVALID, ("raw_input_contents",)),
    Grpc("grpc-raw-fp32-odd-size", infer(datatype="FP32", raw=[b"\x00\x01\x02"]), INVALID, ("FP32",)),
    Grpc("grpc-raw-invalid-utf8", infer(raw=[elements(b"\xff\xfe [MASK]")]), INVALID, ("UTF-8",)),
    Grpc("grpc-shape-larger-than-data", infer(shape=[3]), INVALID, ("shape",)),
    Grpc("grpc-negative-dimension", infer(shape=[-1]), INVALID, ("negative",)),
    Grpc("grpc-empty-tensor", infer([], shape=[0]), INVALID, ("empty",)),
    Grpc("grpc-no-mask", infer([b"no mask here"]), INVALID, ("mask",)),
    Grpc("grpc-empty-string", infer([b""]), INVALID, ("mask",)),
    Grpc("grpc-invalid-utf8", infer([b"\xff\xfe [MASK]"]), INVALID, ("UTF-8",)),
    Grpc("grpc-nul-byte", infer([b"a\x00 [MASK]"]), INVALID, ("NUL",)),
    Grpc("grpc-ten-thousand-masks", infer([TEN_THOUSAND_MASKS.encode()]), INVALID, ("--max_masks",)),
    Grpc("grpc-too-many-inputs", infer([TEXT.encode()] * 300), INVALID, ("--max_inputs",)),
    Grpc("grpc-top_k-string", infer(params={"top_k": p(string_param="3")}), INVALID, ("top_k",)),
    Grpc("grpc-top_k-zero", infer(params={"top_k": p(int64_param=0)}), INVALID, ("top_k",)),
    Grpc("grpc-top_k-minus-one", infer(params={"top_k": p(int64_param=-1)}), INVALID, ("top_k",)),
    Grpc("grpc-top_k-max-uint64", infer(params={"top_k": p(uint64_param=2**64 - 1)}), INVALID, ("top_k",)),
    Grpc("grpc-top_k-fraction", infer(params={"top_k": p(double_param=2.5)}), INVALID, ("top_k",)),
    Grpc("grpc-top_k-infinity", infer(params={"top_k": p(double_param=float("inf"))}), INVALID, ("top_k",)),
    Grpc("grpc-top_k-nan", infer(params={"top_k": p(double_param=float("nan"))}), INVALID, ("top_k",)),
    Grpc("grpc-targets-number", infer(params={"targets": p(int64_param=5)}), INVALID, ("targets",)),
    Grpc("grpc-targets-no-token", infer(params={"targets": p(string_param="\x00")}), INVALID, ("targets",)),
    Grpc("grpc-unknown-output", infer(outputs=("logits",)), INVALID, ("output", "logits")),
    Grpc("grpc-top-k-outputs-mixed-mask-counts",
         infer([TEXT.encode(), b"[MASK] and [MASK]"], outputs=("token_str",)), INVALID, ("masks",)),
    Grpc("grpc-message-over-the-limit", infer([b"a" * GRPC_LIMIT + MASK.encode()]),
         grpc.StatusCode.RESOURCE_EXHAUSTED, ("larger than",)),
]
# fmt: on


# --- sending a case ---


@dataclass(frozen=True)
class Answer:
    status: int | grpc.StatusCode
    message: str  # the error message: {"error"} of a JSON answer, else the body as text, or gRPC's details
    json_error: bool  # the body was {"error": "<string>"} (HTTP only)


def send_http(client: httpx.Client, case: Http) -> Answer:
    response = client.request(case.method, case.path, content=case.body, headers=dict(case.headers))
    try:
        body = response.json()
    except ValueError:
        return Answer(response.status_code, response.text, json_error=False)
    is_error = (
        response.headers.get("content-type", "").startswith("application/json")
        and isinstance(body, dict)
        and isinstance(body.get("error"), str)
    )
    return Answer(response.status_code, body["error"] if is_error else response.text, is_error)


def exchange(data: bytes, port: int) -> bytes:
    """Write ``data`` to a fresh connection and read the answer until the server closes or the declared
    body is complete."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as sock:
        # The server may answer (and close) before reading everything: the answer is what counts.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            length = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
            if sep and length and len(body) >= int(length[0].split(b":")[1]):
                break
    return received


def send_raw(port: int, case: Raw) -> Answer:
    answer = exchange(case.data, port)
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, str):
        return Answer(status, error, json_error=True)
    return Answer(status, body.decode("utf-8", errors="replace"), json_error=False)


def send_grpc(stub: pb_grpc.GRPCInferenceServiceStub, case: Grpc) -> Answer:
    try:
        getattr(stub, case.method)(case.request, timeout=DEADLINE_S)
    except grpc.RpcError as exc:
        call: Any = exc  # also a grpc.Call: code() and details()
        return Answer(call.code(), call.details() or "", json_error=False)
    return Answer(grpc.StatusCode.OK, "", json_error=False)
