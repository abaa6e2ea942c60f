from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from maskserve.backends.heads import MaskedHead, find_head
from maskserve.backends.torch_backend import TorchBackend, quantize_int8, resolve_dtype
from support.concurrency import assert_concurrent_calls_match_serial
from support.engines import engine_for
from support.models import mask_of


def _tiny(config_cls: Any, model_cls: Any, **extra: Any) -> nn.Module:
    torch.manual_seed(0)
    config = config_cls(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        **extra,
    )
    return model_cls(config).eval()


def _architectures() -> list[tuple[str, Any]]:
    import transformers as tf

    return [
        ("bert", lambda: _tiny(tf.BertConfig, tf.BertForMaskedLM)),
        ("roberta", lambda: _tiny(tf.RobertaConfig, tf.RobertaForMaskedLM, pad_token_id=1)),
        ("albert", lambda: _tiny(tf.AlbertConfig, tf.AlbertForMaskedLM, embedding_size=16)),
        ("electra", lambda: _tiny(tf.ElectraConfig, tf.ElectraForMaskedLM, embedding_size=16)),
        ("deberta-v2", lambda: _tiny(tf.DebertaV2Config, tf.DebertaV2ForMaskedLM)),
        ("modernbert", lambda: _tiny(tf.ModernBertConfig, tf.ModernBertForMaskedLM, pad_token_id=0)),
        (
            "distilbert",
            lambda: (
                torch.manual_seed(0),
                tf.DistilBertForMaskedLM(
                    tf.DistilBertConfig(
                        vocab_size=120,
                        dim=32,
                        n_layers=2,
                        n_heads=2,
                        hidden_dim=37,
                        max_position_embeddings=64,
                    )
                ).eval(),
            )[1],
        ),
    ]


# Families whose last encoder layer runs at the masks only; the others run it whole.
_LAST_LAYER_AT_MASKS = {"bert", "roberta", "electra", "distilbert"}


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "unpadded"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize(("family", "build"), _architectures(), ids=[a[0] for a in _architectures()])
def test_head_at_masks_equals_the_full_head(family: str, build: Any, attention: str, padded: bool) -> None:
    model = build()
    model.set_attn_implementation(attention)
    assert find_head(model) is not None, family
    head = MaskedHead(model)
    torch.manual_seed(1)
    ids = torch.randint(5, 120, (3, 9))
    mask = torch.ones_like(ids)
    if padded:
        mask[2, 6:] = 0
    rows, cols = torch.tensor([0, 1, 1, 2]), torch.tensor([3, 0, 8, 5])
    inputs = {"input_ids": ids, "attention_mask": mask}
    assert head.verify(inputs, rows, cols), family
    assert head.last_layer == (family in _LAST_LAYER_AT_MASKS)
    with torch.inference_mode():
        fast = head.logits(inputs, rows, cols)
        full = model(**inputs).logits[rows, cols]
    assert fast.shape == (4, 120)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("family", "build"), _architectures(), ids=[a[0] for a in _architectures()])
def test_the_last_layer_feed_forward_sees_only_the_masks(family: str, build: Any) -> None:
    model = build()
    head = MaskedHead(model)
    first_ffn = [m for name, m in model.named_modules() if name.endswith(("intermediate.dense", "ffn.lin1"))]
    if family not in _LAST_LAYER_AT_MASKS:
        assert not head.last_layer
        return
    rows_seen: list[int] = []
    first_ffn[-1].register_forward_hook(lambda _m, args, _out: rows_seen.append(args[0].shape[:-1].numel()))
    ids = torch.randint(5, 120, (2, 7))
    with torch.inference_mode():
        head.logits(
            {"input_ids": ids, "attention_mask": torch.ones_like(ids)},
            torch.tensor([0, 1]),
            torch.tensor([2, 4]),
        )
        assert rows_seen == [2]
        model(input_ids=ids, attention_mask=torch.ones_like(ids))  # no mask index: the layer runs whole
    assert rows_seen == [2, 14]


def test_a_last_layer_that_disagrees_is_run_whole(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maskserve.backends import heads

    model = dict(_architectures())["bert"]()
    head = MaskedHead(model)
    assert head.last_layer
    # A trimmed layer that computes something else than the whole one (as a layout it misreads would).
    monkeypatch.setattr(heads, "at_masks", lambda _layer, hidden, *_: torch.ones_like(hidden))
    ids = torch.randint(5, 120, (2, 7))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    rows, cols = torch.tensor([0, 1]), torch.tensor([2, 4])
    assert head.verify(inputs, rows, cols)
    assert not head.last_layer
    assert "running the layer whole" in caplog.text
    with torch.inference_mode():
        torch.testing.assert_close(head.logits(inputs, rows, cols), model(**inputs).logits[rows, cols])


def test_fixture_families_use_the_fast_path(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    backend = engine_for(path).backend
    assert isinstance(backend, TorchBackend)
    assert backend.head_at_masks
    assert backend.last_layer_at_masks


def test_model_workers_can_share_the_model(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    engine = engine_for(path)
    mask = engine.encoder.mask_token
    texts = [f"the {mask} sat on the {mask} .", f"{mask} .", f"a song in the old tree by the {mask} today ."]
    batches = [engine.encoder.pad(engine.encoder.encode(texts[: i + 1])) for i in range(len(texts))]
    assert_concurrent_calls_match_serial(engine.backend, batches)


def test_a_model_without_a_known_head_falls_back_to_the_full_head() -> None:
    class Odd(nn.Module):
        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            class Out:
                logits = torch.nn.functional.one_hot(input_ids, 10).float()

            return Out()

    head = MaskedHead(Odd())
    assert not head.enabled
    ids = torch.tensor([[1, 2, 3]])
    out = head.logits(
        {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, torch.tensor([0]), torch.tensor([2])
    )
    assert out.argmax().item() == 3


def test_int8_quantizes_the_encoder_but_not_the_head(bert_dir: Path) -> None:
    from transformers import AutoModelForMaskedLM

    model = quantize_int8(AutoModelForMaskedLM.from_pretrained(str(bert_dir)).eval())
    encoder = model.bert.encoder.layer[0]
    assert "quantized" in type(encoder.intermediate.dense).__module__
    assert "quantized" in type(encoder.attention.self.query).__module__
    assert type(encoder.attention.output.dense) is nn.Linear
    assert type(encoder.output.dense) is nn.Linear
    assert type(model.cls.predictions.transform.dense) is nn.Linear
    assert type(model.cls.predictions.decoder) is nn.Linear
    # The last layer: keys and values read every token and are quantized; what runs at the masks is not.
    last = model.bert.encoder.layer[-1]
    assert "quantized" in type(last.attention.self.key).__module__
    assert "quantized" in type(last.attention.self.value).__module__
    assert type(last.attention.self.query) is nn.Linear
    assert type(last.intermediate.dense) is nn.Linear


def test_int8_keeps_the_last_layer_at_the_masks(bert_dir: Path) -> None:
    # The int8 model still runs its last layer at the masks (on the quantized keys and values).
    backend = engine_for(bert_dir, quantize="int8").backend
    assert isinstance(backend, TorchBackend)
    assert backend.last_layer_at_masks


async def test_int8_backend_answers(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, quantize="int8")
    assert engine.info.dtype == "float32+int8"
    (ours,) = engine.infer([f"the cat sat on the {mask_of(bert_dir)} ."])
    (ref,) = engine_for(bert_dir).infer([f"the cat sat on the {mask_of(bert_dir)} ."])
    assert ours.logits.shape == ref.logits.shape
    assert np.corrcoef(ours.logits[0], ref.logits[0])[0, 1] > 0.9


def test_dtype_rules() -> None:
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("auto", "cuda") == "float16"
    assert resolve_dtype("half", "cpu") == "float16"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
async def test_cuda_float16(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, device="cuda")
    assert engine.backend.device == "cuda"
    assert engine.info.dtype == "float16"
    assert engine.infer([f"the {mask_of(bert_dir)} sat ."])[0].logits.dtype == np.float32


def test_bfloat16_on_cpu(bert_dir: Path) -> None:
    engine = engine_for(bert_dir, dtype="bfloat16")
    assert engine.info.dtype == "bfloat16"
    (ref,) = engine_for(bert_dir).infer(["the [MASK] sat ."])
    (ours,) = engine.infer(["the [MASK] sat ."])
    np.testing.assert_allclose(ours.logits, ref.logits, atol=0.1)


@pytest.mark.parametrize(
    ("content", "cap"),
    [("150000 100000\n", 2), ("100000 100000", 1), ("50000 100000", 1), ("max 100000", None), ("junk", None)],
)
def test_default_threads_respect_a_cgroup_cpu_quota(tmp_path: Path, content: str, cap: int | None) -> None:
    from maskserve.backends.torch_backend import default_threads

    unbounded = default_threads(tmp_path / "missing")
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(content, encoding="ascii")
    assert default_threads(cpu_max) == (unbounded if cap is None else min(cap, unbounded))
