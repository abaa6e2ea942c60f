"""Half precision on a GPU against float32: top-1 agreement on a model with real weights, and the
pipeline's parity within each dtype's tolerance (run by benchmarks/gpu_check.sh on a CUDA machine).

    python benchmarks/gpu_check.py ../shared/models/minilm-l6-mlm-demo --sentences 400
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from maskserve.config import Settings
from maskserve.core.context import RequestContext
from maskserve.core.repository import load_engine
from maskserve.params import FillMaskParams
from workload import sentences

# Relative tolerance of the pipeline's scores per dtype: float16 keeps 10-11 bits, bfloat16 7-8.
TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 8e-2}


def logits(model: str, dtype: str, texts: list[str]) -> np.ndarray:
    engine = load_engine(
        Settings(model=model, device="cuda", dtype=dtype, backend="torch", log_level="warning")
    )
    rows = []
    for start in range(0, len(texts), 32):
        rows += [r.logits[0] for r in engine.infer(texts[start : start + 32])]
    return np.stack(rows)


def pipeline_parity(model: str, dtype: str, texts: list[str]) -> tuple[int, int]:
    """How many of the texts' top-5 answers match the pipeline's (float32, CUDA) token for token, with
    scores within the dtype's tolerance."""
    from transformers import pipeline

    reference = pipeline("fill-mask", model=model, device=0, torch_dtype=torch.float32)
    engine = load_engine(
        Settings(model=model, device="cuda", dtype=dtype, backend="torch", log_level="warning")
    )

    async def ours() -> list[list[list[object]]]:
        try:
            return await engine.fill_mask(texts, FillMaskParams(top_k=5), RequestContext(use_cache=False))
        finally:
            await engine.aclose()

    answers = asyncio.run(ours())
    same = 0
    for text, answer in zip(texts, answers, strict=True):
        theirs = reference(text, top_k=5)
        tokens_equal = [c.token for c in answer[0]] == [t["token"] for t in theirs]  # type: ignore[attr-defined]
        scores_close = all(
            abs(c.score - t["score"]) <= TOLERANCE[dtype] * max(t["score"], 1e-3)  # type: ignore[attr-defined]
            for c, t in zip(answer[0], theirs, strict=True)
        )
        same += tokens_equal and scores_close
    return same, len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("--sentences", type=int, default=400)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device")
    texts = sentences(args.sentences, seed=1)
    ref = logits(args.model, "float32", texts)
    print(f"device {torch.cuda.get_device_name(0)}, {len(texts)} sentences")
    print(
        "| dtype | top-1 agreement with float32 | pipeline parity (top-5 tokens, scores within tolerance) |"
    )
    print("|---|---:|---:|")
    for dtype in ("float32", "float16", "bfloat16"):
        got = logits(args.model, dtype, texts)
        top1 = float((ref.argmax(1) == got.argmax(1)).mean())
        same, total = pipeline_parity(args.model, dtype, texts[:100])
        print(f"| {dtype} | {top1:.3f} | {same}/{total} within {TOLERANCE[dtype]:g} |", flush=True)


if __name__ == "__main__":
    main()
