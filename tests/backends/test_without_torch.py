"""With its export prepared, a model served by ONNX Runtime or OpenVINO needs no torch: fill-mask, the word
algorithms, KServe's outputs and sentence scores run in a process where torch cannot be imported (as in an
image without it), and answer as torch does. (Where torch is installed, transformers imports it to read
a model's configuration; without it, transformers does without.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")

from maskserve.backends.onnx_backend import OnnxBackend

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    model, backend, cache = sys.argv[1:]
    if backend != "torch":
        # As in an image without torch: find_spec sees none (transformers then never imports it either),
        # and any import of it raises ImportError.
        sys.modules["torch"] = None
    from maskserve.config import Settings
    from maskserve.core.repository import load_engine
    from maskserve.core.scoring import SCORE
    from maskserve.params import FillMaskParams, ScoreParams

    engine = load_engine(Settings(model=model, backend=backend, onnx_cache_dir=cache, log_level="warning"))

    async def main():
        out = {"backend": engine.backend.name}
        calls = {
            "top_k": ("the cat sat on the [MASK] .", FillMaskParams(top_k=5)),
            "targets": ("the cat sat on the [MASK] .", FillMaskParams(targets=("mat", "dog"))),
            "whole_word": ("the [MASK] sat on the mat .", FillMaskParams(top_k=3, whole_word=True)),
            "joint": ("the [MASK] sat on the [MASK] .", FillMaskParams(top_k=2, decoding="joint")),
        }
        for name, (text, params) in calls.items():
            (answer,) = await engine.fill_mask([text], params)
            out[name] = [[[list(c.tokens or ()) or [c.token], c.score] for c in row] for row in answer]
        (out["top1"],) = await engine.kserve_values(["the cat sat on the [MASK] ."])
        (score,) = await engine.run(SCORE, ["the cat sat on the mat ."], ScoreParams())
        out["score"] = score.score
        out["torch_imported"] = sys.modules.get("torch") is not None
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def _answers(model: Path, backend: str, cache: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model), backend, str(cache)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answers


@pytest.fixture(scope="module")
def torch_answers(bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _answers(bert_dir, "torch", tmp_path_factory.mktemp("unused"))


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_serving_never_imports_torch(
    bert_dir: Path, tmp_path: Path, backend: str, torch_answers: dict[str, Any]
) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    OnnxBackend.load(bert_dir, cache_dir=tmp_path)  # the prepared export (this process has torch)
    got = _answers(bert_dir, backend, tmp_path)
    assert (got.pop("backend"), got.pop("torch_imported")) == (backend, False)
    want = dict(torch_answers)
    assert (want.pop("backend"), want.pop("torch_imported")) == ("torch", True)
    assert got["top1"] == want["top1"]
    assert got["score"] == pytest.approx(want["score"], abs=1e-4)
    for name in ("top_k", "targets", "whole_word", "joint"):
        tokens = [[token for token, _ in row] for row in got[name]]
        assert tokens == [[token for token, _ in row] for row in want[name]], name
        scores = [score for row in got[name] for _, score in row]
        assert scores == pytest.approx([score for row in want[name] for _, score in row], rel=1e-4), name
