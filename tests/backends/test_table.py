"""The backend table: one row per engine, the names --backend takes, the auto rule, the int8 keep-float
rule that torch and ONNX read from one place."""

from __future__ import annotations

import re
import typing

import pytest

from maskserve.backends import int8, table
from maskserve.backends.table import BACKENDS, BackendSpec, choose_backend
from maskserve.config.fields import Backend


def test_backend_flag_choices_are_the_table_and_auto() -> None:
    assert set(typing.get_args(Backend)) == {*BACKENDS, "auto", "huggingface"}


def test_every_row_names_a_class_with_load() -> None:
    for spec in BACKENDS.values():
        if spec.available():
            assert callable(spec.load_class().load), spec.name


def test_a_missing_engine_says_what_to_install() -> None:
    missing = BackendSpec(
        "nope", "nowhere", "Nope", ("no_such_package_here",), ("cpu",), "x", "maskserve[nope]"
    )
    assert not missing.available()
    with pytest.raises(
        ValueError, match=r"--backend nope needs no_such_package_here: pip install 'maskserve\[nope\]'"
    ):
        missing.load_class()


def test_auto_picks_by_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_backend("torch", "cpu") == "torch"
    assert choose_backend("openvino", "cpu") == "openvino"
    # OpenVINO measured no faster than ONNX Runtime on the CPU (docs/benchmarks.md): installed, not chosen.
    monkeypatch.setattr(BackendSpec, "available", lambda self: True)
    assert choose_backend("auto", "cpu") == "onnx"
    monkeypatch.setattr(table, "resolve_device", lambda device: "cuda")
    assert choose_backend("huggingface", "auto") == "torch"
    monkeypatch.setattr(BackendSpec, "available", lambda self: self.name == "torch")
    monkeypatch.setattr(table, "resolve_device", lambda device: "cpu")
    assert choose_backend("auto", "cpu") == "torch"  # no graph engine installed


@pytest.mark.parametrize(
    ("module", "node", "role"),
    [
        (
            "bert.encoder.layer.3.attention.output.dense",
            "/bert/encoder/layer.3/attention/output/dense/MatMul",
            "out",
        ),
        ("bert.encoder.layer.3.output.dense", "/bert/encoder/layer.3/output/dense/MatMul", "ffn_out"),
        (
            "bert.encoder.layer.3.intermediate.dense",
            "/bert/encoder/layer.3/intermediate/dense/MatMul",
            "ffn_in",
        ),
        (
            "distilbert.transformer.layer.0.ffn.lin2",
            "/distilbert/transformer/layer.0/ffn/lin2/MatMul",
            "ffn_out",
        ),
        (
            "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn",
            "/albert/encoder/albert_layer_groups.0/albert_layers.0/ffn/MatMul",
            "ffn_in",
        ),
        (
            "bert.encoder.layer.3.attention.self.query",
            "/bert/encoder/layer.3/attention/self/query/MatMul",
            None,
        ),
    ],
)
def test_torch_and_onnx_read_the_same_keep_float_rule(module: str, node: str, role: str | None) -> None:
    roles = {"out": int8.ATTENTION_OUTPUT, "ffn_in": int8.FFN_IN, "ffn_out": int8.FFN_OUT}
    for name, paths in roles.items():
        expected = name == role
        assert any(re.search(p, module) for p in int8.module_patterns(paths)) is expected, (module, name)
        assert any(re.search(p, node) for p in int8.node_patterns(paths)) is expected, (node, name)
