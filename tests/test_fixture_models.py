"""The tiny fixture models load offline and look like the real checkpoints the server must handle."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer, XLMRobertaTokenizer, pipeline

from support.models import (
    SPM_MODEL_FILE,
    build_bert,
    build_no_mask_token,
    build_not_mlm,
    build_roberta,
    build_xlmr,
    mask_of,
)

Builder = Callable[..., Path]
ALL_BUILDERS = (build_bert, build_roberta, build_xlmr, build_not_mlm, build_no_mask_token)


def test_fill_mask_pipeline_runs(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    fill_mask = pipeline("fill-mask", model=str(path))

    results = fill_mask(f"the cat sat on the {mask_of(path)} .")

    assert len(results) == 5
    assert {"score", "token", "token_str", "sequence"} <= set(results[0])
    assert 0 < sum(result["score"] for result in results) <= 1 + 1e-6


def test_bert_tokenizer_length_is_unbounded_but_position_table_is_not(bert_dir: Path) -> None:
    assert AutoTokenizer.from_pretrained(str(bert_dir)).model_max_length > 10**6
    assert AutoConfig.from_pretrained(str(bert_dir)).max_position_embeddings == 64


@pytest.mark.parametrize("family", ["roberta", "xlmr"])
def test_roberta_family_pads_with_1_and_reserves_two_positions(
    family: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(f"{family}_dir")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    config = AutoConfig.from_pretrained(str(path))

    assert tokenizer.pad_token_id == 1
    assert config.pad_token_id == 1
    assert tokenizer.model_max_length == config.max_position_embeddings - 2 == 64
    assert config.vocab_size == len(tokenizer)


def test_xlmr_sentencepiece_model_matches_tokenizer_json(xlmr_dir: Path, tmp_path: Path) -> None:
    assert (xlmr_dir / SPM_MODEL_FILE).is_file()
    # A directory holding only the .model makes transformers convert it itself; ids must agree.
    shutil.copy(xlmr_dir / SPM_MODEL_FILE, tmp_path / SPM_MODEL_FILE)
    from_spm = XLMRobertaTokenizer.from_pretrained(str(tmp_path))
    from_json = AutoTokenizer.from_pretrained(str(xlmr_dir))
    text = "the cat sat on the <mask> . le chat über"

    assert from_spm(text)["input_ids"] == from_json(text)["input_ids"]
    assert from_json.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    assert from_json.mask_token_id == len(from_json) - 1


@pytest.mark.parametrize("builder", ALL_BUILDERS, ids=lambda builder: builder.__name__)
def test_builders_are_deterministic(builder: Builder, tmp_path: Path) -> None:
    first = builder(tmp_path / "first", seed=7)
    second = builder(tmp_path / "second", seed=7)
    other_seed = builder(tmp_path / "other", seed=8)

    assert _non_weight_files(first) == _non_weight_files(second)
    assert _tensors_equal(_weights(first), _weights(second))
    assert not _tensors_equal(_weights(first), _weights(other_seed))


def test_not_mlm_has_no_masked_lm_head(not_mlm_dir: Path) -> None:
    architectures = json.loads((not_mlm_dir / "config.json").read_text())["architectures"]

    assert architectures == ["BertForSequenceClassification"]
    assert not any(name.endswith("ForMaskedLM") for name in architectures)


def test_no_mask_tokenizer_has_no_mask_token(no_mask_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(no_mask_dir))

    assert tokenizer.mask_token is None
    assert tokenizer.mask_token_id is None
    assert "[MASK]" not in tokenizer.get_vocab()
    with pytest.raises(ValueError, match="no mask token"):
        mask_of(no_mask_dir)


def test_mask_of_names_each_family_token(bert_dir: Path, roberta_dir: Path, xlmr_dir: Path) -> None:
    assert [mask_of(bert_dir), mask_of(roberta_dir), mask_of(xlmr_dir)] == ["[MASK]", "<mask>", "<mask>"]


def _non_weight_files(path: Path) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in sorted(path.iterdir()) if file.suffix != ".safetensors"}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def _tensors_equal(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> bool:
    return left.keys() == right.keys() and all(torch.equal(left[name], right[name]) for name in left)
