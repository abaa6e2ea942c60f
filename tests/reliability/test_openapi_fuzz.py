"""schemathesis against ``/openapi.json`` of one real server: generated requests for every operation, valid
ones (with the served model's name, and with random names) and invalid ones, a bounded number of each.

No answer may be a 5xx; statuses, content types and bodies must be the ones the document declares; and a
request that violates the document must be refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from reliability.catalog import LIMIT_FLAGS
from reliability.live import DEADLINE_S, MODEL, LiveServer

pytestmark = pytest.mark.e2e

SERVER_FLAGS = LIMIT_FLAGS
# Per operation and kind of generated request; with 14 operations that is about 600 requests, which take
# 20 to 30 s here. The same requests on every machine (derandomized): a slower one takes longer, and every
# call has its own deadline, so only a hang could make the run long.
MAX_EXAMPLES = 20
# positive_data_acceptance is left out on purpose: the document cannot say that a text must contain the
# model's mask token, so most schema-valid fill-mask requests are rightly refused with a 400 that names
# the missing mask. Every other response check schemathesis has for an unauthenticated API runs.
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
)
# The path parameters that name the model: pinned to the served one, generated requests reach the model
# instead of all ending in 404.
MODEL_PARAMETERS = ("name", "model_id")


@dataclass(frozen=True)
class Finding:
    operation: str  # and the kind of generated request
    check: str
    status: int
    message: str


@dataclass
class Fuzz:
    findings: list[Finding] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    runs: int = 0
    nothing_invalid: list[str] = field(default_factory=list)

    def of(self, check: str, *, ok_statuses: bool | None = None) -> list[Finding]:
        """The findings of one check; ``ok_statuses`` keeps only those about 2xx (True) or other (False)
        responses."""
        return [
            f
            for f in self.findings
            if f.check == check and (ok_statuses is None or (200 <= f.status < 300) == ok_statuses)
        ]


def _variants(operation: Any) -> list[tuple[str, GenerationMode, dict[str, str]]]:
    names = [p.name for p in operation.path_parameters]
    pinned = {n: MODEL for n in names if n in MODEL_PARAMETERS}
    variants = [("valid", GenerationMode.POSITIVE, {})]
    if pinned:
        variants.append(("valid, served model", GenerationMode.POSITIVE, pinned))
    if operation.body or operation.query or names:
        variants.append(("invalid", GenerationMode.NEGATIVE, pinned))
    return variants


SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # each call has its own timeout
    database=None,  # no example database: a run never depends on an earlier one
    derandomize=True,  # the same requests on every run, so a failure can be replayed
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


def _exercise(fuzz: Fuzz, operation: Any, variant: str, mode: GenerationMode, pinned: dict[str, str]) -> None:
    label = f"{operation.label} ({variant})"
    statuses = fuzz.statuses.setdefault(label, [])

    @SETTINGS
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode, path_parameters=pinned))
    def exercise(case: schemathesis.Case) -> None:
        response = case.call(timeout=DEADLINE_S)
        statuses.append(response.status_code)
        fuzz.runs += 1
        for check in CHECKS:
            try:
                case.validate_response(response, checks=[check])
            # schemathesis reports a failed check as a BaseExceptionGroup.
            except BaseException as exc:
                fuzz.findings.append(Finding(label, check.__name__, response.status_code, str(exc)[:1500]))

    try:
        exercise()
    except Unsatisfiable:
        # Nothing in the operation can be made invalid: its only parameters are free-form path strings.
        fuzz.nothing_invalid.append(label)


def run_fuzz(server: LiveServer) -> Fuzz:
    schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json", timeout=DEADLINE_S)
    fuzz = Fuzz()
    for result in schema.get_all_operations():
        operation = result.ok()
        for variant, mode, pinned in _variants(operation):
            _exercise(fuzz, operation, variant, mode, pinned)
    return fuzz


@pytest.fixture(scope="module")
def fuzz(server: LiveServer) -> Fuzz:
    return run_fuzz(server)


def _show(findings: list[Finding]) -> str:
    return "\n\n".join(f"{f.operation} [{f.check}] -> {f.status}\n{f.message}" for f in findings[:5])


def test_the_fuzzing_covered_every_operation(fuzz: Fuzz) -> None:
    print(f"\nschemathesis: {fuzz.runs} requests; nothing to make invalid in {fuzz.nothing_invalid}")
    assert fuzz.runs >= 200
    # With the served model's name the generated bodies reach the protocol parsers, not just a 404.
    for label in (
        "POST /v1/models/{name}:predict (valid, served model)",
        "POST /v2/models/{name}/infer (valid, served model)",
        "POST /models/{model_id} (valid, served model)",
    ):
        assert set(fuzz.statuses[label]) - {404}, (label, fuzz.statuses[label])


def test_no_server_errors(fuzz: Fuzz) -> None:
    assert fuzz.of("not_a_server_error") == [], _show(fuzz.of("not_a_server_error"))
    server_errors = {label: s for label, statuses in fuzz.statuses.items() for s in statuses if s >= 500}
    assert server_errors == {}


def test_statuses_and_content_types_are_declared(fuzz: Fuzz) -> None:
    found = fuzz.of("status_code_conformance") + fuzz.of("content_type_conformance")
    assert found == [], _show(found)


def test_invalid_requests_are_refused(fuzz: Fuzz) -> None:
    assert fuzz.of("negative_data_rejection") == [], _show(fuzz.of("negative_data_rejection"))


def test_error_bodies_match_their_schema(fuzz: Fuzz) -> None:
    found = fuzz.of("response_schema_conformance", ok_statuses=False)
    assert found == [], _show(found)


def test_success_bodies_match_their_schema(fuzz: Fuzz) -> None:
    found = fuzz.of("response_schema_conformance", ok_statuses=True)
    assert found == [], _show(found)
