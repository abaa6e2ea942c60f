"""int8 recipes side by side: agreement with float32 on a model with real weights, and speed on a
bert-base-sized one, per recipe, in one run; plus a per-layer sensitivity sweep (each layer kept in float
in turn) that shows where int8 loses agreement.

    apt-get install wordnet-base   # the second sentence set
    python benchmarks/int8_recipes.py ../shared/models/minilm-l6-mlm-demo --speed-model build/bench-bert-base

Agreement is over two sentence sets: ``benchmarks/workload.py``'s sentences and WordNet usage examples with
one word masked (both seeded): top-1 agreement with fp32 and the overlap of the top-5 sets. Speed is the
ONNX session alone on batches of 16 workload sentences, fp32 and each recipe alternating, best of rounds.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from maskserve.backends import onnx_quantize
from maskserve.backends.onnx_backend import OnnxBackend
from maskserve.backends.onnx_quantize import Int8Recipe
from maskserve.config import Settings
from maskserve.core.repository import load_engine
from workload import sentences

WORDNET = Path("/usr/share/wordnet")


def wordnet_set(n: int, seed: int = 7) -> list[str]:
    found: list[str] = []
    for part in ("noun", "verb", "adj"):
        for line in (WORDNET / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines():
            found += re.findall(r'"([^"]+)"', line.partition("|")[2])
    rng = random.Random(seed)
    pool = sorted({s.lower() for s in found if s.isascii() and 6 <= len(s.split()) <= 25})
    rng.shuffle(pool)
    out = []
    for sentence in pool:
        words = [m for m in re.finditer(r"[a-z]{3,}", sentence)]
        if words:
            m = rng.choice(words)
            out.append(sentence[: m.start()] + "[MASK]" + sentence[m.end() :])
        if len(out) == n:
            break
    return out


def logits(backend: Any, engine: Any, texts: list[str]) -> np.ndarray:
    rows = []
    for start in range(0, len(texts), 32):
        batch = engine.encoder.pad(engine.encoder.encode(texts[start : start + 32]))
        rows.append(backend.mask_logits(batch))
    return np.concatenate(rows)


def agreement(ref: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    top1 = float((ref.argmax(1) == other.argmax(1)).mean())
    ref5 = np.argsort(-ref, axis=1)[:, :5]
    other5 = np.argsort(-other, axis=1)[:, :5]
    return top1, float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ref5, other5, strict=True)]))


def quantized(model: Path, recipe: Int8Recipe, cache: Path) -> Any:
    """A fresh int8 backend for ``recipe`` (its own cache directory: recipes must not share entries)."""
    root = Path(tempfile.mkdtemp(dir=cache))
    original = onnx_quantize.DEFAULT_RECIPE
    onnx_quantize.DEFAULT_RECIPE = recipe
    try:
        return OnnxBackend.load(model, cache_dir=root, quantize="int8")
    finally:
        onnx_quantize.DEFAULT_RECIPE = original


def speed(backend: Any, engine: Any, texts: list[str], calls: int = 12) -> float:
    """Sentences per second over ``calls`` batches of 16 (after two warm-up calls)."""
    batches = [engine.encoder.pad(engine.encoder.encode(texts[i * 16 : i * 16 + 16])) for i in range(4)]
    for batch in batches[:2]:
        backend.mask_logits(batch)
    started = time.perf_counter()
    for i in range(calls):
        backend.mask_logits(batches[i % len(batches)])
    return 16 * calls / (time.perf_counter() - started)


# Node names of the exported BERT-likes: layer.N/attention/output/dense, layer.N/intermediate/dense,
# layer.N/output/dense (the FFN's second product); Attention_N is the fused QKV product.
ATTENTION_OUT = r"attention/output/dense"
FFN_IN = r"intermediate/dense"
FFN_OUT = r"layer\.\d+/output/dense"

RECIPES = {
    "dynamic int8, every encoder product (the previous recipe)": Int8Recipe(),
    "per-tensor weights": Int8Recipe(per_channel=False),
    "smoothed, alpha 0.7": Int8Recipe(smooth_alpha=0.7),
    "FFN output in float": Int8Recipe(keep_float=(FFN_OUT,)),
    "smoothed 0.7, FFN output in float": Int8Recipe(smooth_alpha=0.7, keep_float=(FFN_OUT,)),
    "smoothed 0.7, FFN in float": Int8Recipe(smooth_alpha=0.7, keep_float=(FFN_IN, FFN_OUT)),
    "smoothed 0.7, attention output and FFN output in float": Int8Recipe(
        smooth_alpha=0.7, keep_float=(ATTENTION_OUT, FFN_OUT)
    ),
    "smoothed 0.7, attention output and FFN in float": Int8Recipe(
        smooth_alpha=0.7, keep_float=(ATTENTION_OUT, FFN_IN, FFN_OUT)
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--speed-model", type=Path, default=None)
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--cache", type=Path, default=Path("build/int8-recipes"))
    parser.add_argument("--sweep", action="store_true", help="also keep each layer in float in turn")
    parser.add_argument("--only", default="", help="run only the recipes whose name contains this")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    engine = load_engine(Settings(model=str(args.model), backend="torch", log_level="warning"))
    sets = {"workload": sentences(args.sentences, seed=1), "wordnet": wordnet_set(args.sentences)}
    fp32 = OnnxBackend.load(args.model, cache_dir=args.cache / "fp32")
    ref = {name: logits(fp32, engine, texts) for name, texts in sets.items()}
    recipes = {name: recipe for name, recipe in RECIPES.items() if args.only in name}
    if args.sweep:
        layers = 6
        for i in range(layers):
            recipes[f"layer {i} in float"] = Int8Recipe(keep_float=(rf"layer\.{i}/", f"Attention_{i}$"))
    speed_engine = fp32_speed = None
    if args.speed_model is not None:
        speed_engine = load_engine(
            Settings(model=str(args.speed_model), backend="torch", log_level="warning")
        )
        fp32_speed = OnnxBackend.load(args.speed_model, cache_dir=args.cache / "fp32-speed")
    columns = ["workload top-1", "workload top-5 overlap", "WordNet top-1", "WordNet top-5 overlap"]
    print(f"| recipe | {' | '.join(columns)} | speed vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, recipe in recipes.items():
        q = quantized(args.model, recipe, args.cache)
        cells = []
        for set_name, texts in sets.items():
            top1, top5 = agreement(ref[set_name], logits(q, engine, texts))
            cells += [f"{top1:.3f}", f"{top5:.3f}"]
        ratio = ""
        if speed_engine is not None and fp32_speed is not None and not name.startswith("layer "):
            fast = quantized(args.speed_model, recipe, args.cache)
            texts = sets["workload"]
            # fp32 before and after the recipe, one session at a time: the machine's speed drifts.
            before = speed(fp32_speed, speed_engine, texts)
            rate = speed(fast, speed_engine, texts)
            after = speed(fp32_speed, speed_engine, texts)
            ratio = f"{rate / ((before + after) / 2):.2f}x ({rate:.0f} vs {(before + after) / 2:.0f}/s)"
            del fast
        print(f"| {name} | {' | '.join(cells)} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
