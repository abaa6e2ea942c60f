"""Which matrix products int8 leaves in float, for every backend: the products that read outlier-heavy
activations (an attention context, a GELU output), by their role, with the module names each architecture
gives them. A backend matches module names (torch) or ONNX node scopes (the exporters name nodes after the
module path, ``/encoder/layer.0/attention/output/dense/MatMul``) from the same table.

Keeping these in float is what holds int8's answers to float32's on real weights: on minilm-l6-mlm-demo,
dynamic int8 of every product agrees on 71-85 % of top-1 answers, with these in float 97-98 %
(docs/benchmarks.md, "int8 recipes").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A module path, component by component; "#" stands for a layer index. BERT, RoBERTa, XLM-R, ELECTRA;
# DistilBERT; ALBERT; ModernBERT.
ModulePath = tuple[str, ...]
ATTENTION_OUTPUT: tuple[ModulePath, ...] = (
    ("attention", "output", "dense"),
    ("attention", "out_lin"),
    ("attention", "dense"),
    ("attn", "Wo"),
)
FFN_IN: tuple[ModulePath, ...] = (("intermediate", "dense"), ("ffn", "lin1"), ("ffn",), ("mlp", "Wi"))
FFN_OUT: tuple[ModulePath, ...] = (
    ("layer.#", "output", "dense"),
    ("ffn", "lin2"),
    ("ffn_output",),
    ("mlp", "Wo"),
)


def _component(part: str) -> str:
    return re.escape(part).replace("\\#", "#").replace("#", r"\d+")


def module_patterns(paths: Iterable[ModulePath]) -> tuple[str, ...]:
    """Regular expressions for torch module names (``encoder.layer.0.output.dense``) ending in one of
    ``paths``."""
    return tuple(r"(^|\.)" + r"\.".join(_component(p) for p in path) + "$" for path in paths)


def node_patterns(paths: Iterable[ModulePath]) -> tuple[str, ...]:
    """Regular expressions for the ONNX nodes a module of one of ``paths`` exports to: its ops sit right in
    its scope (``.../ffn/MatMul`` is ALBERT's ``ffn`` product; ``.../ffn/lin2/MatMul`` is not)."""
    return tuple("/" + "/".join(_component(p) for p in path) + "/[^/]*$" for path in paths)
