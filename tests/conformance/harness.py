"""The conformance harness: inputs, the server handle, the client-script runner and the comparisons with
the in-process engine (fixtures live in conftest.py).

The kserve SDK and tritonclient.grpc run in their own interpreters (``clients/*.py``, JSON on stdout): their
generated protobuf modules register the same ``inference.*`` symbols as maskserve's gRPC stubs, and protobuf
refuses duplicates in one process. The pytest process itself imports neither, nor maskserve's stubs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from maskserve.domain import InputPredictions, Prediction
from support.servers import loopback_env

HERE = Path(__file__).resolve().parent
CLIENTS = HERE / "clients"
JS_DIR = HERE / "js"
SRC = HERE.parents[1] / "src"

MODEL = "bert"
# The KServe guide's request; one mask per input.
TEXTS = ["The capital of France is [MASK].", "The capital of [MASK] is paris."]
# Every input with two masks: top-k tensors are then [N, 2, k].
TWO_MASK_TEXTS = ["The [MASK] of France is [MASK].", "The capital of [MASK] is [MASK]."]
TOP_K = 3
# The Hugging Face Inference API request (one text, one mask) with top_k and targets.
HF_TEXT = "The capital of France is [MASK]."
HF_TOP_K = 2
# Whole words of the tiny model's vocabulary, so each target is one token (out-of-vocabulary targets fall
# back to their first sub-token, with a warning).
HF_TARGETS = ["water", "simple", "think"]

KSERVE_OUTPUT = "output-0"
TOPK_DATATYPES = {"token_str": "BYTES", "score": "FP32", "token": "INT64", "sequence": "BYTES"}
# Scores cross FP32 tensors and another process's batches: equal up to float32 rounding, not bit for bit.
SCORE_TOLERANCE: dict[str, float] = {"rel": 1e-5, "abs": 1e-8}

READY_TIMEOUT_S = 90.0
CLIENT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:P
    http_hostport: str  # 127.0.0.1:P (tritonclient.http wants no scheme)
    grpc: str  # 127.0.0.1:G
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no server log: {exc})"

    def spec(self) -> dict[str, Any]:
        """What every client script is told: where the server is and what to send."""
        return {
            "http": self.base,
            "http_hostport": self.http_hostport,
            "grpc": self.grpc,
            "model": MODEL,
            "texts": TEXTS,
            "two_mask_texts": TWO_MASK_TEXTS,
            "top_k": TOP_K,
            "text": HF_TEXT,
            "hf_top_k": HF_TOP_K,
            "targets": HF_TARGETS,
        }


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- the reference: the in-process engine on the same inputs ---


@dataclass(frozen=True)
class Reference:
    top1: list[str]  # TEXTS: KServe's top-1 strings
    top_k: list[InputPredictions]  # TEXTS, top_k=TOP_K
    two_masks: list[InputPredictions]  # TWO_MASK_TEXTS, top_k=TOP_K
    hf_targets: list[Prediction]  # HF_TEXT, top_k=HF_TOP_K, targets=HF_TARGETS (its one mask)
    hf_default: list[Prediction]  # HF_TEXT, the pipeline's defaults (its one mask)


# --- client scripts ---


@dataclass(frozen=True)
class ClientRun:
    """The JSON one client script printed; ``case`` fails the test with that case's error."""

    label: str
    document: dict[str, Any]
    server: Server

    def case(self, name: str) -> Any:
        cases = self.document["cases"]
        assert name in cases, f"{self.label} ran no case {name!r} (it ran {sorted(cases)})"
        result = cases[name]
        if not result["ok"]:
            pytest.fail(
                f"{self.label} case {name!r} failed: {result['error']}\n{result.get('traceback', '')}\n"
                f"--- maskserve log (tail) ---\n{self.server.log_tail(2000)}",
                pytrace=False,
            )
        return result["value"]


def run_client(
    label: str,
    command: Sequence[str],
    server: Server,
    *,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> ClientRun:
    """Run one client script to completion and parse the one JSON document it prints."""
    try:
        done = subprocess.run(
            list(command),
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=loopback_env(),
            timeout=CLIENT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{label} did not finish in {CLIENT_TIMEOUT_S:.0f} s: {exc.stderr!r}")
    if done.returncode != 0:
        pytest.fail(f"{label} exited {done.returncode}:\n{done.stderr[-4000:]}")
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{label} printed no JSON document:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return ClientRun(label=label, document=document, server=server)


def run_python_client(script: str, server: Server, *args: str) -> ClientRun:
    return run_client(
        f"{script} {' '.join(args)}".strip(),
        [sys.executable, str(CLIENTS / script), *args],
        server,
        stdin=json.dumps(server.spec()),
    )


# --- comparisons with the reference ---


def _field(candidate: Any, name: str) -> Any:
    return candidate[name] if isinstance(candidate, Mapping) else getattr(candidate, name)


def assert_predictions(actual: Sequence[Any], expected: Sequence[Prediction]) -> None:
    """A client's candidates for one mask (dicts or objects with score, token, token_str, sequence) are the
    engine's, in the engine's order."""
    assert isinstance(actual, Sequence)
    assert not isinstance(actual, str)
    got = [(_field(c, "token"), _field(c, "token_str"), _field(c, "sequence")) for c in actual]
    assert got == [(p.token, p.token_str, p.sequence) for p in expected]
    assert all(type(_field(c, "token")) is int for c in actual)
    scores = [_field(c, "score") for c in actual]
    # JSON writers may print 1.0 as 1 (JavaScript does); a bool is never a score.
    assert all(isinstance(s, float | int) and not isinstance(s, bool) for s in scores)
    assert scores == pytest.approx([p.score for p in expected], **SCORE_TOLERANCE)


def assert_output0(outputs: Mapping[str, Any], top1: list[str]) -> None:
    """KServe's ``output-0``: a BYTES tensor of shape [N] holding the engine's top-1 strings."""
    assert set(outputs) == {KSERVE_OUTPUT}
    tensor = outputs[KSERVE_OUTPUT]
    assert tensor["datatype"] == "BYTES"
    assert tensor["shape"] == [len(top1)]
    if tensor["array_shape"] is not None:
        assert tensor["array_shape"] == [len(top1)]
    assert tensor["data"] == top1


def assert_topk_tensors(outputs: Mapping[str, Any], expected: list[InputPredictions]) -> None:
    """The four top-k tensors: datatypes, shape [N, k] (or [N, M, k]) and, row-major, the engine's
    candidates."""
    assert set(outputs) == set(TOPK_DATATYPES)
    masks = len(expected[0])
    k = len(expected[0][0])
    shape = [len(expected), k] if masks == 1 else [len(expected), masks, k]
    for name, datatype in TOPK_DATATYPES.items():
        tensor = outputs[name]
        assert (name, tensor["datatype"], tensor["shape"]) == (name, datatype, shape)
        if tensor["array_shape"] is not None:
            assert tensor["array_shape"] == shape, name
    flat = [p for result in expected for candidates in result for p in candidates]
    assert outputs["token_str"]["data"] == [p.token_str for p in flat]
    assert outputs["sequence"]["data"] == [p.sequence for p in flat]
    assert outputs["token"]["data"] == [p.token for p in flat]
    assert all(type(t) is int for t in outputs["token"]["data"])
    assert outputs["score"]["data"] == pytest.approx([p.score for p in flat], **SCORE_TOLERANCE)


def assert_model_metadata(meta: Mapping[str, Any]) -> None:
    """The model's V2 metadata as any client decodes it (shapes may arrive as int64 JSON strings)."""
    assert meta["name"] == MODEL

    def tensors(items: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, list[int]]]:
        return {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in items}

    assert tensors(meta["inputs"]) == {"input-0": ("BYTES", [-1])}
    assert tensors(meta["outputs"]) == {
        KSERVE_OUTPUT: ("BYTES", [-1]),
        **{name: (datatype, [-1, -1]) for name, datatype in TOPK_DATATYPES.items()},
    }


def assert_server_metadata(meta: Mapping[str, Any]) -> None:
    assert meta["name"] == "maskserve"
    assert isinstance(meta["version"], str)
    assert meta["version"]
    assert isinstance(meta.get("extensions", []), list)
