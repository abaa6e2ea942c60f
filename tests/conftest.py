"""Shared fixtures. Tiny model directories are built once per session from tests/support/models.py."""

import os
import tempfile

# Must precede any transformers / huggingface_hub import: the hub reads it at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# maskserve's user cache (built ONNX graphs, downloads) for this run only, never the user's own; servers the
# tests start inherit it.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="maskserve-tests-cache-")

from pathlib import Path

import pytest

MLM_FAMILIES = ("bert", "roberta", "xlmr")


@pytest.fixture(autouse=True, scope="session")
def _onnx_builds_in_process() -> None:
    """In-process tests build ONNX graphs in-process, where they can patch the build and skip a child's
    start-up; servers started as processes build in a child as deployed (tests/backends/test_onnx_child.py
    covers that path in-process too)."""
    from maskserve.backends import child

    child.IN_PROCESS = True


# --- tiny model directories: session-scoped, built once, treat as read-only ---
# support.models is imported inside the fixtures because it imports transformers (about 10 s here);
# tests that need no model then never pay for it.


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.models import build_bert

    return build_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="session")
def roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.models import build_roberta

    return build_roberta(tmp_path_factory.mktemp("roberta"))


@pytest.fixture(scope="session")
def xlmr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.models import build_xlmr

    return build_xlmr(tmp_path_factory.mktemp("xlmr"))


@pytest.fixture(scope="session")
def not_mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.models import build_not_mlm

    return build_not_mlm(tmp_path_factory.mktemp("not_mlm"))


@pytest.fixture(scope="session")
def no_mask_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.models import build_no_mask_token

    return build_no_mask_token(tmp_path_factory.mktemp("no_mask"))


@pytest.fixture(params=MLM_FAMILIES)
def mlm_dir(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """``(family, path)`` for every fill-mask family; a test using it runs once per family."""
    family: str = request.param
    path: Path = request.getfixturevalue(f"{family}_dir")
    return family, path
