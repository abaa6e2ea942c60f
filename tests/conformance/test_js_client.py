"""``@huggingface/inference`` (npm, the version pinned in js/package.json) ``fillMask`` against a running
maskserve's Hugging Face Inference API routes, through ``node js/fill_mask.mjs``."""

from __future__ import annotations

import json
import shutil

import pytest

from .harness import JS_DIR, ClientRun, Reference, Server, assert_predictions, run_client

pytestmark = pytest.mark.e2e

ENABLE = "npm ci --prefix tests/conformance/js"


# Session-scoped like ``server`` and ``reference``: pytest sets fixtures up by scope, then in argument order,
# so a missing node skips before the server starts.
@pytest.fixture(scope="session")
def node() -> str:
    """``node``, when it and the pinned package are installed."""
    path = shutil.which("node")
    if path is None:
        pytest.skip(f"node is not on PATH: install Node.js >= 18, then `{ENABLE}`")
    if not (JS_DIR / "node_modules" / "@huggingface" / "inference").is_dir():
        pytest.skip(f"@huggingface/inference is not installed: run `{ENABLE}`")
    return path


@pytest.fixture(scope="session")
def js_client(node: str, server: Server) -> ClientRun:
    return run_client(
        "node js/fill_mask.mjs",
        [node, "fill_mask.mjs", json.dumps(server.spec())],
        server,
        cwd=JS_DIR,
    )


@pytest.mark.parametrize(
    ("case", "defaults"),
    [
        ("endpoint_model_route", False),  # InferenceClient().endpoint(".../models/bert"), top_k and targets
        ("function_model_route", False),  # fillMask({endpointUrl: ".../models/bert", ...})
        ("endpoint_root_route", True),  # InferenceClient("", {endpointUrl: base}): POST /, server defaults
    ],
)
def test_fill_mask_is_the_engines_answer(
    js_client: ClientRun, reference: Reference, case: str, defaults: bool
) -> None:
    assert_predictions(js_client.case(case), reference.hf_default if defaults else reference.hf_targets)
