from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from maskserve.domain import OutputMode
from maskserve.errors import BadRequest
from maskserve.params import FillMaskParams
from support.engines import engine_for
from support.models import mask_of


async def test_no_mask_is_a_bad_request_worded_as_the_pipeline(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    m = mask_of(path)
    engine = engine_for(path)
    with pytest.raises(BadRequest, match="^" + re.escape(f"No mask_token ({m}) found on the input") + "$"):
        await engine.fill_mask(["there is no mask here"], FillMaskParams())
    with pytest.raises(BadRequest, match=r"found on the input \(input 1\)"):
        await engine.fill_mask([f"a {m}", ""], FillMaskParams())


async def test_mask_cut_off_by_truncation(bert_dir: Path) -> None:
    engine = engine_for(bert_dir)
    text = "the dog ran . " * 40 + "[MASK]"
    with pytest.raises(BadRequest, match=r"cut off by truncation: it is token \d+ of \d+.*max_length=64"):
        await engine.kserve_values([text])


async def test_top_k_range(bert_dir: Path) -> None:
    engine = engine_for(bert_dir)
    vocab = engine.info.vocab_size
    with pytest.raises(BadRequest, match=f"between 1 and {vocab}"):
        await engine.fill_mask(["a [MASK]"], FillMaskParams(top_k=vocab + 1))
    results = await engine.fill_mask(["a [MASK]"], FillMaskParams(top_k=vocab))
    assert len(results[0][0]) == vocab


async def test_no_valid_target(roberta_dir: Path) -> None:
    engine = engine_for(roberta_dir)
    with pytest.raises(BadRequest, match="None of the targets"):
        # Past the parameters' own check (a blank target is refused there), the engine refuses it too.
        await engine.fill_mask(["a <mask>"], FillMaskParams.model_construct(targets=("",)))


async def test_empty_input_list(bert_dir: Path) -> None:
    with pytest.raises(BadRequest, match="no inputs"):
        await engine_for(bert_dir).kserve_values([])


def _reference_logits(path: Path, text: str) -> torch.Tensor:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForMaskedLM.from_pretrained(str(path)).eval()
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits[0]
    return logits[enc["input_ids"][0] == tok.mask_token_id]


async def test_kserve_top1_decodes_the_argmax_of_each_mask(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    m = mask_of(path)
    engine = engine_for(path)
    texts = [f"the cat sat on the {m} .", f"the {m} sat on the {m} ."]
    values = await engine.kserve_values(texts)
    for text, value in zip(texts, values, strict=True):
        expected = engine.encoder.tokenizer.decode(_reference_logits(path, text).argmax(-1))
        assert value == expected


async def test_kserve_probabilities_and_logits(bert_dir: Path) -> None:
    text = "the cat sat on the [MASK] ."
    reference = _reference_logits(bert_dir, text)[0]
    probs_engine = engine_for(bert_dir, return_probabilities=True)
    assert probs_engine.output_mode is OutputMode.PROBABILITIES
    (probs,) = await probs_engine.kserve_values([text])
    assert isinstance(probs, dict)
    assert len(probs) == probs_engine.info.vocab_size
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(
        [probs[str(i)] for i in range(5)], reference.softmax(-1)[:5].numpy(), atol=1e-6
    )
    (logits,) = await engine_for(bert_dir, return_logits=True).kserve_values([text])
    assert isinstance(logits, dict)
    np.testing.assert_allclose([logits[str(i)] for i in range(5)], reference[:5].numpy(), atol=1e-4)
    (two,) = await probs_engine.kserve_values(["the [MASK] sat on the [MASK] ."])
    assert isinstance(two, list)
    assert len(two) == 2
