"""A bounded mixed load on one real server: good requests over every protocol (HF Inference API, KServe V1,
V2 REST in JSON and binary form, gRPC typed and raw) from several client threads, with the catalog's bad
requests interleaved. No answer may be a 5xx, every good answer must equal the one the server gave for the
same text before the load, and the server's resident memory must stay within a stated bound.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from maskserve.api.grpc._generated import grpc_predict_v2_pb2_grpc as pb_grpc
from reliability.catalog import (
    GRPC_CASES,
    HTTP_CASES,
    LIMIT_FLAGS,
    RAW_CASES,
    Http,
    elements,
    send_grpc,
    send_http,
    send_raw,
)
from reliability.live import DEADLINE_S, MODEL, NO_CACHE, LiveServer, grpc_request, v2_body

pytestmark = pytest.mark.e2e

SERVER_FLAGS = LIMIT_FLAGS
# Requests per worker thread in each phase: a fixed amount of work, so that what the checks see does not
# depend on how fast the machine is (about 10 s for both phases here). With the warm-up's seed, its 600
# random picks include every case of the catalog.
WARMUP_REQUESTS = 600
LOAD_REQUESTS = 1000
# Bounds a hang only: a worker still going after this long stops, and the load counts as not done.
PHASE_LIMIT_S = 600.0
# Resident memory may grow by at most this much between the end of the warm-up and the end of the load.
# The warm-up has run every code path, so what remains is the response cache (a few KiB for these texts),
# allocator fragmentation and thread-local arenas: a few MiB. A leak of one request body (up to 64 KiB
# here) or one response per request over the run's thousands of requests would go far past it.
RSS_GROWTH_LIMIT_KIB = 64 * 1024
# Scores may differ by about 1e-6 with the batch a text lands in; texts whose two best candidates are at
# least SCORE_MARGIN apart therefore keep their top-1 candidate whatever the batch.
SCORE_TOLERANCE = 1e-6
SCORE_MARGIN = 2e-5
TEXT_COUNT = 12


@dataclass(frozen=True)
class Expected:
    """What the server answered for one text before the load, over each protocol."""

    text: str
    token_str: str  # HF: top-1 candidate
    score: float
    v1: str
    v2: str
    grpc: str


@dataclass
class Tally:
    sent: int = 0
    good: int = 0
    bad: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: Tally) -> None:
        self.sent += other.sent
        self.good += other.good
        self.bad += other.bad
        self.statuses.update(other.statuses)
        self.failures.extend(other.failures)


def candidate_texts() -> Iterator[str]:
    # Imported here: support.models imports transformers, which collecting this module should not cost.
    from support.models import SENTENCES

    for sentence in SENTENCES:
        words = sentence.split()
        for position in (1, len(words) // 2, len(words) - 2):
            yield " ".join([*words[:position], "[MASK]", *words[position + 1 :]])


def reference_answers(server: LiveServer) -> list[Expected]:
    """Each text alone and without the cache, over each protocol; only texts with a clear top-1 are kept."""
    expected: list[Expected] = []
    with server.client(headers=NO_CACHE) as client, server.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for text in candidate_texts():
            hf = client.post(f"/models/{MODEL}", json={"inputs": text, "parameters": {"top_k": 2}})
            assert hf.status_code == 200, hf.text
            best, second = hf.json()
            if best["score"] - second["score"] < SCORE_MARGIN:
                continue
            v1 = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [text]})
            v2 = client.post(f"/v2/models/{MODEL}/infer", json=v2_body([text]))
            assert (v1.status_code, v2.status_code) == (200, 200), (v1.text, v2.text)
            reply = stub.ModelInfer(grpc_request([text]), timeout=DEADLINE_S)
            expected.append(
                Expected(
                    text=text,
                    token_str=best["token_str"],
                    score=best["score"],
                    v1=v1.json()["predictions"][0],
                    v2=v2.json()["outputs"][0]["data"][0],
                    grpc=reply.outputs[0].contents.bytes_contents[0].decode(),
                )
            )
            if len(expected) == TEXT_COUNT:
                break
    assert len(expected) == TEXT_COUNT, "too few texts with a clear top-1 candidate"
    return expected


# --- workers: each makes its count of requests, recording instead of raising ---


@dataclass(frozen=True)
class Phase:
    requests: int  # per worker
    deadline: float  # time.monotonic() past which a worker stops: only a hang reaches it


Worker = Callable[[LiveServer, list[Expected], Phase, random.Random], Tally]


def _loop(phase: Phase, step: Callable[[Tally], None]) -> Tally:
    tally = Tally()
    for _ in range(phase.requests):
        if time.monotonic() >= phase.deadline:
            break
        tally.sent += 1
        try:
            step(tally)
        except Exception as exc:  # a transport error is a finding too, not a crashed worker
            tally.failures.append(f"{type(exc).__name__}: {exc}")
    return tally


def _check(tally: Tally, label: str, status: int, got: Any, want: Any) -> None:
    tally.statuses[f"{label} {status}"] += 1
    if status == 200 and got == want:
        tally.good += 1
    else:
        tally.failures.append(f"{label}: status {status}, got {got!r}, expected {want!r}")


def hf_worker(server: LiveServer, expected: list[Expected], phase: Phase, rng: random.Random) -> Tally:
    with server.client() as client:

        def step(tally: Tally) -> None:
            item = rng.choice(expected)
            path = rng.choice([f"/models/{MODEL}", "/"])
            headers = rng.choice([NO_CACHE, {}])  # computed, or from the cache
            response = client.post(
                path, json={"inputs": item.text, "parameters": {"top_k": 2}}, headers=headers
            )
            got = response.json()[0] if response.status_code == 200 else response.text
            best = got["token_str"] if isinstance(got, dict) else got
            _check(tally, "hf", response.status_code, best, item.token_str)
            if isinstance(got, dict) and abs(got["score"] - item.score) > SCORE_TOLERANCE:
                tally.failures.append(f"hf: score {got['score']} for {item.text!r}, expected {item.score}")

        return _loop(phase, step)


def v1_worker(server: LiveServer, expected: list[Expected], phase: Phase, rng: random.Random) -> Tally:
    with server.client() as client:

        def step(tally: Tally) -> None:
            items = rng.sample(expected, rng.randint(1, 4))
            response = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [i.text for i in items]})
            got = response.json().get("predictions") if response.status_code == 200 else response.text
            _check(tally, "v1", response.status_code, got, [i.v1 for i in items])

        return _loop(phase, step)


def _binary_v2(texts: list[str]) -> tuple[bytes, dict[str, str]]:
    data = elements(*(t.encode() for t in texts))
    parameters = {"binary_data_size": len(data)}
    head = json.dumps({"inputs": [{"name": "input-0", "shape": [len(texts)], "datatype": "BYTES",
                                   "parameters": parameters}]}).encode()  # fmt: skip
    return head + data, {"Inference-Header-Content-Length": str(len(head))}


def v2_worker(server: LiveServer, expected: list[Expected], phase: Phase, rng: random.Random) -> Tally:
    with server.client() as client:

        def step(tally: Tally) -> None:
            items = rng.sample(expected, rng.randint(1, 4))
            texts = [i.text for i in items]
            if rng.random() < 0.5:
                response = client.post(f"/v2/models/{MODEL}/infer", json=v2_body(texts))
            else:
                body, headers = _binary_v2(texts)
                response = client.post(f"/v2/models/{MODEL}/infer", content=body, headers=headers)
            got = response.json()["outputs"][0]["data"] if response.status_code == 200 else response.text
            _check(tally, "v2", response.status_code, got, [i.v2 for i in items])

        return _loop(phase, step)


def grpc_worker(server: LiveServer, expected: list[Expected], phase: Phase, rng: random.Random) -> Tally:
    with server.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        def step(tally: Tally) -> None:
            items = rng.sample(expected, rng.randint(1, 4))
            request = grpc_request([i.text for i in items])
            raw = rng.random() < 0.5
            if raw:  # the same texts as raw_input_contents; the answer then comes raw too
                request.inputs[0].ClearField("contents")
                request.raw_input_contents.append(elements(*(i.text.encode() for i in items)))
            reply = stub.ModelInfer(request, timeout=DEADLINE_S)
            if raw:
                got = [t.decode() for t in _split_elements(reply.raw_output_contents[0])]
            else:
                got = [t.decode() for t in reply.outputs[0].contents.bytes_contents]
            _check(tally, "grpc", 200, got, [i.grpc for i in items])

        return _loop(phase, step)


def _split_elements(raw: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(raw):
        length = int.from_bytes(raw[offset : offset + 4], "little")
        out.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return out


def bad_http_worker(server: LiveServer, expected: list[Expected], phase: Phase, rng: random.Random) -> Tally:
    cases = [*HTTP_CASES, *RAW_CASES]
    with server.client() as client:

        def step(tally: Tally) -> None:
            case = rng.choice(cases)
            answer = send_http(client, case) if isinstance(case, Http) else send_raw(server.http_port, case)
            tally.statuses[f"bad {answer.status}"] += 1
            if answer.status == case.status:
                tally.bad += 1
            else:
                tally.failures.append(f"{case.id}: {answer.status} {answer.message[:200]}")

        return _loop(phase, step)


def bad_grpc_worker(server: LiveServer, expected: list[Expected], phase: Phase, rng: random.Random) -> Tally:
    with server.channel() as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        def step(tally: Tally) -> None:
            case = rng.choice(GRPC_CASES)
            answer = send_grpc(stub, case)
            tally.statuses[f"bad grpc {answer.status}"] += 1
            if answer.status == case.code:
                tally.bad += 1
            else:
                tally.failures.append(f"{case.id}: {answer.status} {answer.message[:200]}")

        return _loop(phase, step)


WORKERS: tuple[Worker, ...] = (
    hf_worker,
    v1_worker,
    v2_worker,
    grpc_worker,
    bad_http_worker,
    bad_grpc_worker,
)


def run_load(server: LiveServer, expected: list[Expected], requests: int, seed: int) -> Tally:
    """Every worker at once, each making ``requests`` requests."""
    started = time.monotonic()
    phase = Phase(requests, started + PHASE_LIMIT_S)
    total = Tally()
    with ThreadPoolExecutor(len(WORKERS)) as pool:
        futures = [
            pool.submit(worker, server, expected, phase, random.Random(seed * 100 + index))
            for index, worker in enumerate(WORKERS)
        ]
        for future in futures:
            # A request stuck past the limit still ends at its own deadline.
            total.merge(future.result(timeout=PHASE_LIMIT_S + 4 * DEADLINE_S))
    total.seconds = time.monotonic() - started
    return total


@dataclass(frozen=True)
class LoadReport:
    tally: Tally
    rss_before_kib: int
    rss_peak_kib: int
    rss_after_kib: int
    server_errors_before: dict[str, float]
    server_errors_after: dict[str, float]
    log_offset: int


def server_errors(server: LiveServer) -> dict[str, float]:
    return {
        name: count
        for name, count in server.metrics().items()
        if name.startswith("maskserve_requests_total{") and 'status="5' in name
    }


@pytest.fixture(scope="module")
def load(server: LiveServer) -> LoadReport:
    expected = reference_answers(server)
    log_offset = server.log_size()  # after loading: the readiness probe's 503s are ERROR lines
    errors_before = server_errors(server)
    warmup = run_load(server, expected, WARMUP_REQUESTS, seed=1)
    assert warmup.failures == []
    assert warmup.sent == len(WORKERS) * WARMUP_REQUESTS
    rss_before = server.rss_kib()
    peak = rss_before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.25):
            peak = max(peak, server.rss_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        tally = run_load(server, expected, LOAD_REQUESTS, seed=2)
    finally:
        stop.set()
        sampler.join(5)
    rss_after = server.rss_kib()
    return LoadReport(
        tally=tally,
        rss_before_kib=rss_before,
        rss_peak_kib=max(peak, rss_after),
        rss_after_kib=rss_after,
        server_errors_before=errors_before,
        server_errors_after=server_errors(server),
        log_offset=log_offset,
    )


def test_the_load_was_real(load: LoadReport) -> None:
    # Every worker made all its requests, and a fair number of them were answered as expected, so the
    # checks below mean something.
    tally = load.tally
    print(f"\nload: {tally.good} good, {tally.bad} bad requests in {tally.seconds:.1f} s: {tally.statuses}")
    assert tally.sent == len(WORKERS) * LOAD_REQUESTS, f"stopped after {PHASE_LIMIT_S:.0f} s"
    assert load.tally.good >= 200
    assert load.tally.bad >= 50
    for label in ("hf 200", "v1 200", "v2 200", "grpc 200"):
        assert load.tally.statuses[label] >= 20, label


def test_every_answer_is_right_and_none_is_a_5xx(load: LoadReport) -> None:
    assert load.tally.failures == []
    assert not [s for s in load.tally.statuses if s.split()[-1].startswith("5")]
    assert load.server_errors_after == load.server_errors_before


def test_resident_memory_stays_bounded(load: LoadReport) -> None:
    growth = load.rss_peak_kib - load.rss_before_kib
    print(
        f"\nRSS after warm-up {load.rss_before_kib / 1024:.1f} MiB, peak {load.rss_peak_kib / 1024:.1f} MiB, "
        f"after {load.rss_after_kib / 1024:.1f} MiB (growth {growth / 1024:.1f} MiB)"
    )
    assert growth < RSS_GROWTH_LIMIT_KIB


def test_still_serving_with_a_clean_log(load: LoadReport, server: LiveServer) -> None:
    assert server.alive()
    with server.client() as client:
        assert client.get("/v2/health/ready").status_code == 200
        response = client.post(f"/models/{MODEL}", json={"inputs": "the [MASK] sat on the mat ."})
        assert response.status_code == 200
    assert server.log_problems(since=load.log_offset) == []
