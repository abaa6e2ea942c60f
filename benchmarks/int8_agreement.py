"""How often int8 agrees with fp32, on a model with real weights (random weights say nothing here).

    python benchmarks/int8_agreement.py ../shared/models/minilm-l6-mlm-demo --sentences 400

For each backend it loads the model twice (fp32 and --quantize int8), runs the same seeded workload
sentences through both and prints top-1 agreement, top-5 overlap and how often the int8 top-1 is in the
fp32 top-5.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from maskserve.config import Settings
from maskserve.core.repository import load_engine
from workload import sentences


def mask_logits(model: str, backend: str, quantize: str, texts: list[str], cache: str | None) -> np.ndarray:
    engine = load_engine(Settings(model=model, backend=backend, quantize=quantize, onnx_cache_dir=cache))
    rows: list[np.ndarray] = []
    for start in range(0, len(texts), 32):
        rows += [r.logits[0] for r in engine.infer(texts[start : start + 32])]
    return np.stack(rows)


def agreement(ref: np.ndarray, other: np.ndarray) -> tuple[float, float, float]:
    top1 = float((ref.argmax(1) == other.argmax(1)).mean())
    ref5 = np.argsort(-ref, axis=1)[:, :5]
    other5 = np.argsort(-other, axis=1)[:, :5]
    overlap = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ref5, other5, strict=True)]))
    in_top5 = float(np.mean([o[0] in r for r, o in zip(ref5, other5, strict=True)]))
    return top1, overlap, in_top5


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--onnx-cache-dir", default=str(Path.home() / ".cache" / "maskserve" / "onnx"))
    args = parser.parse_args()
    texts = sentences(args.sentences, seed=args.seed)
    print(f"model {args.model}, {len(texts)} workload sentences (seed {args.seed})")
    print("| backend | top-1 agreement | top-5 overlap | int8 top-1 in fp32 top-5 |")
    print("|---|---:|---:|---:|")
    for backend in args.backends.split(","):
        ref = mask_logits(args.model, backend, "none", texts, args.onnx_cache_dir)
        q = mask_logits(args.model, backend, "int8", texts, args.onnx_cache_dir)
        top1, overlap, in5 = agreement(ref, q)
        print(f"| {backend} int8 vs {backend} fp32 | {top1:.3f} | {overlap:.3f} | {in5:.3f} |", flush=True)


if __name__ == "__main__":
    main()
