"""Dynamic int8 of an exported fp32 graph: the encoder and the vocabulary projection, from a copy of the
embeddings it is tied to; the embedding lookup and the rest of the head stay in float."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from maskserve.backends import int8, onnx_smooth
from maskserve.backends.cache import META_FILE, write_meta
from maskserve.backends.onnx_export import MODEL_FILE, _big
from maskserve.backends.onnx_session import quiet_ort_logs

logger = logging.getLogger(__name__)


def head_nodes(graph: Any, scope: str | None) -> list[str]:
    """Names of the nodes computing the LM head: every node downstream of the mask indices (the head
    runs on the gathered rows), plus every node in the head module's name scope (the full-head fallback)."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found: dict[str, Any] = {}
    frontier = ["mask_rows", "mask_cols"]
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.name not in found:
                found[node.name] = node
                frontier.extend(node.output)
    if scope:
        found.update({node.name: node for node in graph.node if scope in node.name})
    return sorted(found)


def reduce_range() -> bool:
    """Whether int8 weights must use 7 bits: on x86 without VNNI.

    There ONNX Runtime's u8 x s8 kernels add pairs of products in int16 (vpmaddubsw), which saturates
    with full-range weights: 255 x 127 summed over 256 terms comes out halved on an AVX-512BW Xeon without
    VNNI. 7-bit weights cannot overflow it. With VNNI (and off x86) the full int8 range is exact.
    """
    if platform.machine().lower() not in {"x86_64", "amd64", "i386", "i686"}:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    return "vnni" not in flags


@dataclass(frozen=True)
class Int8Recipe:
    """What the int8 graph quantizes; part of the cache key. ``keep_float``: regular expressions searched in
    node names, whose nodes stay in float (on top of the mask-row nodes)."""

    keep_float: tuple[str, ...] = ()
    projection: bool = True
    per_channel: bool = True
    # SmoothQuant's migration strength (None: no smoothing); needs calibration text.
    smooth_alpha: float | None = None
    # The calibration text's digest, when smoothing (a user's --quantize_calibration changes the graph).
    calibration: str | None = None

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


# The products that read outlier-heavy activations (backends/int8.py): the attention output and both
# feed-forward products, as ONNX node scopes.
OUTLIER_PRODUCTS = int8.node_patterns(int8.ATTENTION_OUTPUT + int8.FFN_IN + int8.FFN_OUT)

# What --quantize int8 builds (docs/benchmarks.md, "int8 recipes"): SmoothQuant (alpha 0.7, calibrated on
# the packaged text) on what is quantized, which is the attention's Q/K/V product and the vocabulary
# projection; the attention output and the feed-forward products stay in float. On the demo model it agrees
# with float32 on the top-1 for 97.8 % and 97.3 % of two sentence sets (the all-int8 recipe: 85.5 %).
DEFAULT_RECIPE = Int8Recipe(keep_float=OUTLIER_PRODUCTS, smooth_alpha=0.7)


def with_calibration(recipe: Int8Recipe, path: Path | None) -> Int8Recipe:
    """The recipe with its calibration text's digest, so another text makes another cached graph."""
    if recipe.smooth_alpha is None:
        return recipe
    if path is not None and not path.is_file():
        raise ValueError(f"--quantize_calibration {path} is not a readable file")
    data = (path or onnx_smooth.CALIBRATION_FILE).read_bytes()
    return replace(recipe, calibration=hashlib.sha256(data).hexdigest()[:16])


@dataclass(frozen=True)
class Int8Build:
    """One int8 graph from an fp32 entry, as a job for :func:`maskserve.backends.child.run_build`."""

    source: Path
    scratch: Path
    reduce: bool
    recipe: Int8Recipe
    model_dir: Path | None = None
    calibration: Path | None = None


def build_int8_job(job: Int8Build) -> None:
    build_int8(
        job.source,
        job.scratch,
        reduce=job.reduce,
        recipe=job.recipe,
        model_dir=job.model_dir,
        calibration=job.calibration,
    )


def build_int8(
    source: Path,
    scratch: Path,
    *,
    reduce: bool,
    recipe: Int8Recipe = DEFAULT_RECIPE,
    model_dir: Path | None = None,
    calibration: Path | None = None,
) -> None:
    """Dynamic int8 (per-channel QInt8 weights) for the encoder's MatMuls, fused Attention nodes and the
    vocabulary projection.

    What runs at the mask rows stays float (the head's transform, the last layer's mask-row parts): it is
    a few rows of work. The vocabulary projection is the exception: the head reads all of its 30k x hidden
    weights for every call however few masks it holds, so in float it costs ~9 ms per call on a bert-base
    here (memory bound), against ~3 ms as int8. With per-channel scales it agrees with float on
    ``minilm-l6-mlm-demo`` as often as the float projection does (docs/benchmarks.md); per-tensor scales
    were what made an int8 head flip predictions. It reads a transposed int8 copy of the embedding matrix:
    the embedding lookup keeps the float original it is tied to (Gather and EmbedLayerNormalization are
    not quantized op types).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    meta = json.loads((source / META_FILE).read_text(encoding="utf-8"))
    model = onnx.load(str(source / MODEL_FILE))
    head = set(head_nodes(model.graph, meta.get("head_scope")))
    untie_gemms(model, head)
    projection = untie_vocabulary_projection(model, int(meta["vocab_size"])) if recipe.projection else None
    if projection is not None:
        head.discard(projection)
    head.update(n.name for n in model.graph.node if any(re.search(p, n.name) for p in recipe.keep_float))
    if recipe.smooth_alpha is not None:
        if model_dir is None:
            raise ValueError("smoothing needs the model's tokenizer for its calibration text")
        nodes = onnx_smooth.targets(model, head | ({projection} if projection else set()))
        feeds = calibration_feeds(model_dir, calibration)
        maxima = onnx_smooth.activation_maxima(source / MODEL_FILE, [n.input[0] for n in nodes], feeds)
        smoothed = onnx_smooth.smooth(model, nodes, maxima, recipe.smooth_alpha)
        logger.info("smoothed %d int8 matrix products (alpha %.2f)", smoothed, recipe.smooth_alpha)
    # The quantizer renames what it rewrites (X -> X_MatMul, X_Add); exclude those names too.
    excluded = sorted(head | {f"{name}{suffix}" for name in head for suffix in ("_MatMul", "_Add")})
    started = time.perf_counter()
    try:
        with quiet_ort_logs():
            quantize_dynamic(
                model_input=model,
                model_output=str(scratch / MODEL_FILE),
                op_types_to_quantize=["MatMul", "Attention"],
                per_channel=recipe.per_channel,
                reduce_range=reduce,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded,
                use_external_data_format=_big(source / MODEL_FILE),
                # Shape inference stops at contrib ops (Attention, SkipLayerNorm...); their outputs are float.
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    except Exception as exc:
        raise ValueError(f"cannot quantize {meta['architecture']} to int8: {exc}") from exc
    logger.info(
        "quantized the ONNX graph to int8 in %.1f s (%d mask-row nodes kept float, vocabulary projection %s)",
        time.perf_counter() - started,
        len(head),
        "int8" if projection is not None else "float",
    )
    write_meta(
        scratch,
        {
            **meta,
            "quantize": "int8",
            "reduce_range": reduce,
            "int8_projection": projection is not None,
            "recipe": asdict(recipe),
        },
    )


def calibration_feeds(model_dir: Path, path: Path | None) -> list[dict[str, Any]]:
    """The calibration sentences as the graph's feeds, one sentence each (no padding to skew maxima)."""
    import numpy as np
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    # Within the position table (RoBERTa-likes number positions from 2), and short: calibration measures
    # activation ranges, which a sentence shows as well as a page.
    longest = min(128, int(config.get("max_position_embeddings", 512)) - 2)
    feeds = []
    for text in onnx_smooth.calibration_texts(path):
        ids = np.asarray([tokenizer(text, truncation=True, max_length=longest)["input_ids"]], dtype=np.int64)
        feeds.append(
            {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
                "mask_rows": np.zeros(1, dtype=np.int64),
                "mask_cols": np.ones(1, dtype=np.int64),
            }
        )
    return feeds


def untie_gemms(model: Any, head: set[str]) -> None:
    """Turn the head's ``Gemm``s (and any whose weight is shared) into ``FusedMatMul`` + ``Add``, in place.

    The dynamic quantizer rewrites every ``Gemm(transB=1)`` as a ``MatMul`` and transposes its weight
    initializer in place, assuming nothing else reads it. With tied embeddings the head's projection and
    the embedding lookup read the same initializer, so that would hand the lookup a transposed matrix.
    ``FusedMatMul`` (an ONNX Runtime contrib op) multiplies by the transposed weight without copying it,
    and is not an op the quantizer touches.
    """
    from onnx import helper

    graph = model.graph
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA")
        if node.op_type != "Gemm" or not plain or (node.name not in head and readers[node.input[1]] < 2):
            nodes.append(node)
            continue
        product = f"{node.output[0]}_product" if len(node.input) > 2 else node.output[0]
        nodes.append(
            helper.make_node(
                "FusedMatMul",
                [node.input[0], node.input[1]],
                [product],
                name=f"{node.name}_FusedMatMul",
                domain="com.microsoft",
                transB=int(attrs.get("transB", 0)),
            )
        )
        if len(node.input) > 2:
            nodes.append(
                helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_Bias")
            )
        head.update({f"{node.name}_FusedMatMul", f"{node.name}_Bias"})
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def untie_vocabulary_projection(model: Any, vocab_size: int) -> str | None:
    """Give the head's vocabulary projection a weight of its own, as a plain ``MatMul`` the quantizer
    rewrites; return its node name (None when the graph has no such node).

    After :func:`untie_gemms` the projection is a ``FusedMatMul`` by the transposed [vocab, hidden]
    embedding matrix (or, untied, a ``MatMul`` by a [hidden, vocab] one). Its new weight is a transposed
    copy, so the float matrix the embedding lookup reads is left as it is.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    for index, node in enumerate(graph.node):
        if node.op_type not in {"FusedMatMul", "MatMul"} or node.input[1] not in weights:
            continue
        dims = list(weights[node.input[1]].dims)
        if len(dims) != 2 or vocab_size not in dims or dims[0] == dims[1]:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if any(attrs.get(name, 0) for name in ("transA", "transBatchA", "transBatchB")):
            continue
        if attrs.get("alpha", 1.0) != 1.0:
            continue
        matrix = numpy_helper.to_array(weights[node.input[1]])
        if attrs.get("transB", 0):
            matrix = matrix.T
        if matrix.shape[1] != vocab_size:
            continue
        name = f"{node.input[1]}_projection"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(matrix), name))
        projection = helper.make_node(
            "MatMul", [node.input[0], name], list(node.output), name=f"{node.name}_projection"
        )
        graph.node.remove(node)
        graph.node.insert(index, projection)
        return str(projection.name)
    return None
