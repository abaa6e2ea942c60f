"""OpenVINO int8 recipes (NNCF) side by side: top-1 agreement and top-5 overlap with float32 on a model with
real weights, and speed against ONNX Runtime float32 on a bert-base-sized one, in one run. Needs
``pip install nncf`` (not a maskserve dependency) and Debian's ``wordnet-base`` for the second sentence set.

    python benchmarks/openvino_int8.py ../shared/models/minilm-l6-mlm-demo --speed-model build/bench-bert-base

Recipes run on maskserve's own export (the graph ``--backend onnx`` and ``--backend openvino`` serve).
Static recipes are calibrated on the packaged calibration text (``backends/calibration.txt``, one masked
sentence per item); weights-only compression needs none. Speed: the engine alone, batches of 16 workload
sentences, ONNX Runtime float32 and the recipe alternating, median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from int8_recipes import agreement, logits, wordnet_set
from maskserve.backends import cache as graph_cache
from maskserve.backends import onnx_build, onnx_export, onnx_quantize
from maskserve.backends.onnx_backend import OnnxBackend
from maskserve.backends.openvino_backend import OpenVinoBackend, compile_config
from maskserve.config import Settings
from maskserve.core.repository import load_engine
from workload import sentences

# Node names in the export (ONNX Runtime's fused graph keeps the products' own names).
ATTENTION_OUT = r".*attention/output/dense/.*"
FFN_OUT = r".*layer\.\d+/output/dense.*"


def _float32(model: Path, cache: Path) -> Any:
    entry = onnx_build.ensure_fp32(model, cache, threads=2, trust_remote_code=False)
    import openvino as ov

    return ov.Core().read_model(str(entry / onnx_export.MODEL_FILE)), graph_cache.read_entry(entry)


def _static(keep_float: tuple[str, ...]) -> Callable[[Any, Path], Any]:
    def build(model: Any, model_dir: Path) -> Any:
        import nncf

        feeds = onnx_quantize.calibration_feeds(model_dir, None)
        names = {name for port in model.inputs for name in port.get_names()}
        dataset = nncf.Dataset(feeds, lambda feed: {k: v for k, v in feed.items() if k in names})
        ignored = nncf.IgnoredScope(patterns=list(keep_float), validate=False) if keep_float else None
        return nncf.quantize(
            model,
            dataset,
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(feeds),
            **({"ignored_scope": ignored} if ignored else {}),
        )

    return build


def _weights_only(model: Any, model_dir: Path) -> Any:
    import nncf

    return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)


RECIPES: dict[str, Callable[[Any, Path], Any]] = {
    "float32 (OpenVINO)": lambda model, model_dir: model,
    "static int8, every product (NNCF, SmoothQuant)": _static(()),
    "static int8, attention output and FFN output in float": _static((ATTENTION_OUT, FFN_OUT)),
    "weights only, int8 asymmetric (float compute)": _weights_only,
}


def _backend(model: Any, meta: dict[str, Any]) -> OpenVinoBackend:
    import openvino as ov

    return OpenVinoBackend(ov.Core().compile_model(model, "CPU", compile_config(2, 1)), meta)


def _ratio(reference: Any, backend: Any, engine: Any, texts: list[str], rounds: int) -> tuple[float, float]:
    batches = [engine.encoder.pad(engine.encoder.encode(texts[i * 16 : i * 16 + 16])) for i in range(4)]

    def rate(b: Any) -> float:
        b.mask_logits(batches[0])
        started = time.perf_counter()
        for batch in batches:
            b.mask_logits(batch)
        return 16 * len(batches) / (time.perf_counter() - started)

    ratios, rates = [], []
    for _ in range(rounds):
        base, this = rate(reference), rate(backend)
        ratios.append(this / base)
        rates.append(this)
    return statistics.median(rates), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--speed-model", type=Path, default=None)
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path("build/openvino-int8"))
    parser.add_argument("--only", default="", help="run only the recipes whose name contains this")
    args = parser.parse_args()
    engine = load_engine(Settings(model=str(args.model), backend="torch", log_level="warning"))
    sets = {"workload": sentences(args.sentences, seed=1), "wordnet": wordnet_set(args.sentences)}
    reference = OnnxBackend.load(args.model, cache_dir=args.cache)
    ref = {name: logits(reference, engine, texts) for name, texts in sets.items()}
    model, meta = _float32(args.model, args.cache)
    if args.speed_model is not None:
        speed_engine = load_engine(
            Settings(model=str(args.speed_model), backend="torch", log_level="warning")
        )
        speed_reference = OnnxBackend.load(args.speed_model, cache_dir=args.cache, threads=2)
        speed_model, speed_meta = _float32(args.speed_model, args.cache)
        texts = sentences(64, seed=2)
    header = "| recipe | top-1 workload | top-1 WordNet | top-5 workload | top-5 WordNet | sentences/s |"
    print(header + " x ORT fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, build in RECIPES.items():
        if args.only not in name:
            continue
        backend = _backend(build(model.clone(), args.model), meta)
        scores = {
            set_name: agreement(ref[set_name], logits(backend, engine, t)) for set_name, t in sets.items()
        }
        speed = ""
        if args.speed_model is not None:
            fast = _backend(build(speed_model.clone(), args.speed_model), speed_meta)
            rate, ratio = _ratio(speed_reference, fast, speed_engine, texts, args.rounds)
            speed = f"{rate:.1f} | {ratio:.2f}x"
        w1, w5 = scores["workload"]
        n1, n5 = scores["wordnet"]
        print(f"| {name} | {w1:.3f} | {n1:.3f} | {w5:.3f} | {n5:.3f} | {speed or '| '} |", flush=True)


if __name__ == "__main__":
    main()
