from __future__ import annotations

from pathlib import Path

import pytest

from maskserve.config import Settings
from maskserve.core import loader
from maskserve.core.loader import check_masked_lm, max_input_length, worker_threads
from maskserve.core.repository import load_engine
from maskserve.errors import ModelLoadError
from support.engines import engine_for


def test_rejects_a_model_without_a_masked_lm_head(not_mlm_dir: Path) -> None:
    with pytest.raises(
        ModelLoadError, match=r"is not a masked language model \(BertForSequenceClassification\)"
    ):
        load_engine(Settings(model=str(not_mlm_dir)))


def test_rejects_a_tokenizer_without_a_mask_token(no_mask_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="no mask token"):
        load_engine(Settings(model=str(no_mask_dir)))


def test_rejects_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_engine(Settings(model=str(tmp_path)))


def test_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="nope"):
        load_engine(Settings(model=str(tmp_path / "nope")))


@pytest.mark.parametrize(
    ("config", "ok"),
    [
        ({"architectures": ["BertForMaskedLM"]}, True),
        ({"architectures": ["XLMWithLMHeadModel"]}, True),
        ({"architectures": ["BertForPreTraining"]}, True),
        ({"architectures": ["ElectraForPreTraining"], "model_type": "electra"}, False),
        ({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}, False),
        ({"model_type": "roberta"}, True),
        ({"model_type": "gpt2"}, False),
    ],
)
def test_check_masked_lm(config: dict[str, object], ok: bool) -> None:
    if ok:
        assert check_masked_lm(config, "m")
    else:
        with pytest.raises(ModelLoadError, match="not a masked language model"):
            check_masked_lm(config, "m")


def test_max_length_is_bounded_by_the_position_table() -> None:
    # bert-base-uncased in the wild: no tokenizer limit (1e30), 512 positions.
    assert (
        max_input_length({"model_type": "bert", "max_position_embeddings": 512}, int(1e30), None, "m") == 512
    )
    # RoBERTa and XLM-R: 514 positions but 512 usable tokens.
    roberta = {"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}
    assert max_input_length(roberta, None, None, "m") == 512
    assert max_input_length({**roberta, "model_type": "xlm-roberta"}, 512, None, "m") == 512
    assert max_input_length(roberta, 256, None, "m") == 256
    assert max_input_length(roberta, 512, 100, "m") == 100
    with pytest.raises(ModelLoadError, match="more than m supports"):
        max_input_length(roberta, 512, 513, "m")


def test_fixture_models_get_their_real_limits(bert_dir: Path, roberta_dir: Path, xlmr_dir: Path) -> None:
    assert engine_for(bert_dir).info.max_length == 64
    assert engine_for(roberta_dir).info.max_length == 64
    assert engine_for(xlmr_dir).info.max_length == 64


def test_too_large_max_length_flag_fails_at_start(bert_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="--max_length 65"):
        load_engine(Settings(model=str(bert_dir), max_length=65))


def test_model_info(roberta_dir: Path) -> None:
    info = engine_for(roberta_dir, model_name="rob").info
    assert info.name == "rob"
    assert info.mask_token == "<mask>"
    assert info.architecture == "RobertaForMaskedLM"
    assert info.dtype == "float32"
    assert info.answers_to("rob")
    assert info.answers_to(str(roberta_dir))
    assert not info.answers_to("other")


@pytest.mark.parametrize(
    ("cores", "workers", "threads", "want"),
    [(8, 1, None, 8), (8, 2, None, 4), (8, 3, None, 2), (2, 4, None, 1), (8, 1, 3, 3), (8, 2, 4, 2)],
)
def test_model_workers_share_the_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, threads: int | None, want: int
) -> None:
    monkeypatch.setattr(loader, "default_threads", lambda: cores)
    settings = Settings(model="m", model_workers=workers, threads=threads)
    assert worker_threads(settings) == want
