"""Deterministic builders of tiny, random-weight masked-LM model directories.

Each builder writes a directory that ``AutoTokenizer.from_pretrained``, ``AutoModelForMaskedLM`` (or
``AutoModel``) and ``transformers.pipeline("fill-mask", ...)`` load fully offline. The tokenizers are real
formats (WordPiece, byte-level BPE, SentencePiece unigram) trained or generated from fixed in-module data,
so the same call always writes the same files; ``seed`` only drives the random model weights.
"""

from __future__ import annotations

import io
import json
import string
from pathlib import Path
from typing import TypedDict

import sentencepiece as spm
import torch
from sentencepiece import sentencepiece_model_pb2
from tokenizers import AddedToken, ByteLevelBPETokenizer
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaTokenizer,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaTokenizer,
)


class TinySizes(TypedDict):
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int


TINY_SIZES: TinySizes = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}

BERT_SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ROBERTA_SPECIAL_TOKENS: tuple[str, ...] = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
ROBERTA_VOCAB_SIZE = 600
SPM_VOCAB_SIZE = 300
SPM_MODEL_FILE = "sentencepiece.bpe.model"
# Tokenizers are data, not weights: they stay identical whatever model seed is asked for.
SPM_TRAINING_SEED = 1234

_WORD_BLOCK = """
    the of and to a in is it you that he was for on are with as i his they be at one have this from
    or had by hot word but what some we can out other were all there when up use your how said an each
    she which do their time if will way about many then them write would like so these her long make
    thing see him two has look more day could go come did number sound no most people my over know
    water than call first who may down side been now find any new work part take get place made live
    where after back little only round man year came show every good me give our under name very
    through just form sentence great think say help low line differ turn cause much mean before move
    right boy old too same tell does set three want air well also play small end put home read hand
    port large spell add even land here must big high such follow act why ask men change went light
    kind off need house picture try us again animal point mother world near build self earth father
    head stand own page should country found answer school grow study still learn plant cover food sun
    four between state keep eye never last let thought city tree cross farm hard start might story saw
    far sea draw left late run while press close night real life few north open seem together next
    white children begin got walk example ease paper group always music those both mark often letter
    until mile river car feet care second book carry took science eat room friend began idea fish
    mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual
    young ready above ever red list though feel talk bird soon body dog family direct pose leave song
    measure door product black short numeral class wind question happen complete ship area half rock
    order fire south problem piece told knew pass since top whole king space heard best hour better
    true during hundred five remember step early hold west ground interest reach fast verb sing listen
    six table travel less morning ten simple several vowel toward war lay against pattern slow center
    love person money serve appear road map rain rule govern pull cold notice voice unit power town
    fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct
    able pound done beauty drive stood contain front teach week final gave green quick develop ocean
    warm free minute strong special mind behind clear tail produce fact street inch multiply nothing
    course stay wheel full force blue object decide surface deep moon island foot system busy test
    record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape
    equate miss brought heat snow tire bring yes distant fill east paint language among cat sat mat
"""
WORDS: tuple[str, ...] = tuple(_WORD_BLOCK.split())

SENTENCES: tuple[str, ...] = (
    "the cat sat on the mat .",
    "the dog ran across the green field to find the ball .",
    "a little bird sang a song in the old tree near the river .",
    "my mother made bread for the whole family this morning .",
    "we will travel to the city by train next week .",
    "the children read a story about a king who lived by the sea .",
    "paris is the capital of france and berlin is the capital of germany .",
    "she opened the door and saw the white snow on the ground .",
    "the quick brown fox jumps over the lazy dog .",
    "he wrote a long letter to his friend in the north .",
    "water boils when it is hot enough .",
    "the sun is a star and the earth is a planet .",
    "they play music together every night after dinner .",
    "the man in the red car stopped at the light .",
    "it was a cold and dark night , and the wind was strong .",
    "please answer the question before the end of the class .",
    "the teacher asked the students to learn ten new words .",
    "there are many fish in the deep blue ocean .",
    "i think the answer is simple , but the problem is hard .",
    "what time does the school open in the morning ?",
    "the farmer grows food on a large farm near the mountain .",
    "our house has a small garden with many plants .",
    "she said that the book was better than the film .",
    "the machine can count from one to one hundred in a second .",
    "good people help each other when times are hard .",
)

FOREIGN_SENTENCES: tuple[str, ...] = (
    "le chat est assis sur le tapis .",
    "la capitale de la france est paris .",
    "je pense donc je suis .",
    "nous allons à la plage demain matin .",
    "elle a écrit une lettre à sa mère .",
    "die katze sitzt auf der matte .",
    "die hauptstadt von deutschland ist berlin .",
    "ich habe heute morgen einen apfel gegessen .",
    "wir fahren nächste woche mit dem zug in die stadt .",
    "der hund läuft schnell über die grüne wiese .",
)


def corpus_lines(*, multilingual: bool = False) -> list[str]:
    """Fixed training corpus: the sentences plus the word list, a dozen words per line."""
    word_lines = [" ".join(WORDS[i : i + 12]) for i in range(0, len(WORDS), 12)]
    foreign = list(FOREIGN_SENTENCES) if multilingual else []
    return [*SENTENCES, *foreign, *word_lines]


def bert_vocab(*, with_mask: bool = True) -> list[str]:
    """WordPiece vocabulary: specials, single characters, their ``##`` forms, then whole words."""
    specials = [token for token in BERT_SPECIAL_TOKENS if with_mask or token != "[MASK]"]
    chars = string.ascii_lowercase + string.digits + string.punctuation
    tokens = [*specials, *chars, *(f"##{char}" for char in chars), *WORDS]
    return list(dict.fromkeys(tokens))


def mask_of(path: Path) -> str:
    """The mask token string of the tokenizer saved in ``path``."""
    mask = AutoTokenizer.from_pretrained(str(path)).mask_token
    if mask is None:
        raise ValueError(f"tokenizer in {path} has no mask token")
    return str(mask)


def build_bert(path: Path, *, max_position_embeddings: int = 64, seed: int = 0) -> Path:
    """Tiny ``BertForMaskedLM`` with a lowercase WordPiece tokenizer and an unbounded ``model_max_length``."""
    vocab = _write_bert_tokenizer(path, with_mask=True)
    _save_model(BertForMaskedLM, _bert_config(len(vocab), max_position_embeddings), path, seed)
    return path


def build_not_mlm(path: Path, *, seed: int = 0) -> Path:
    """Tiny ``BertForSequenceClassification``: a valid model without a masked-LM head."""
    vocab = _write_bert_tokenizer(path, with_mask=True)
    _save_model(BertForSequenceClassification, _bert_config(len(vocab), 64), path, seed)
    return path


def build_no_mask_token(path: Path, *, seed: int = 0) -> Path:
    """Tiny ``BertForMaskedLM`` whose tokenizer has no mask token at all."""
    vocab = _write_bert_tokenizer(path, with_mask=False)
    _save_model(BertForMaskedLM, _bert_config(len(vocab), 64), path, seed)
    return path


def build_roberta(path: Path, *, max_position_embeddings: int = 66, seed: int = 0) -> Path:
    """Tiny ``RobertaForMaskedLM`` with a byte-level BPE tokenizer trained on the fixed corpus."""
    path.mkdir(parents=True, exist_ok=True)
    vocab, merges = _train_byte_level_bpe(path)
    tokenizer = RobertaTokenizer(
        vocab=vocab,
        merges=merges,
        # As in roberta-base: "<mask>" swallows the space before it, so "the <mask>" predicts " word".
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
        model_max_length=max_position_embeddings - 2,
    )
    tokenizer.save_pretrained(str(path))
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        **TINY_SIZES,
    )
    _save_model(RobertaForMaskedLM, config, path, seed)
    return path


def build_xlmr(path: Path, *, max_position_embeddings: int = 66, seed: int = 0) -> Path:
    """Tiny ``XLMRobertaForMaskedLM`` with a SentencePiece unigram tokenizer trained on the fixed corpus."""
    path.mkdir(parents=True, exist_ok=True)
    spm_model = _train_sentencepiece()
    (path / SPM_MODEL_FILE).write_bytes(spm_model)
    vocab, charsmap = _fairseq_vocab_and_charsmap(spm_model)
    tokenizer = XLMRobertaTokenizer(
        vocab=vocab,
        _spm_precompiled_charsmap=charsmap,
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
        model_max_length=max_position_embeddings - 2,
    )
    tokenizer.save_pretrained(str(path))
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        **TINY_SIZES,
    )
    _save_model(XLMRobertaForMaskedLM, config, path, seed)
    return path


def _bert_config(vocab_size: int, max_position_embeddings: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=2,
        pad_token_id=0,
        **TINY_SIZES,
    )


def _write_bert_tokenizer(path: Path, *, with_mask: bool) -> list[str]:
    path.mkdir(parents=True, exist_ok=True)
    vocab = bert_vocab(with_mask=with_mask)
    # Transformers 5 saves only tokenizer.json; vocab.txt is written too so the directory looks like a
    # real BERT checkpoint to anything that reads the legacy file.
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(
        vocab={token: index for index, token in enumerate(vocab)},
        do_lower_case=True,
        mask_token="[MASK]" if with_mask else None,
    )
    tokenizer.save_pretrained(str(path))
    return vocab


def _train_byte_level_bpe(path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train byte-level BPE, write vocab.json + merges.txt into ``path`` and return them parsed."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus_lines(),
        vocab_size=ROBERTA_VOCAB_SIZE,
        min_frequency=1,
        special_tokens=list(ROBERTA_SPECIAL_TOKENS),
        show_progress=False,
    )
    bpe.save_model(str(path))
    vocab: dict[str, int] = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    merge_lines = (path / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [_split_merge(line) for line in merge_lines if line and not line.startswith("#version")]
    return vocab, merges


def _split_merge(line: str) -> tuple[str, str]:
    left, right = line.split(" ")
    return left, right


def _train_sentencepiece() -> bytes:
    # Keep SentencePiece's default unk=0, <s>=1, </s>=2: XLM-R (and transformers' own conversion of a
    # sentencepiece.bpe.model) drops exactly those three pieces and renumbers with the fairseq specials.
    spm.set_random_generator_seed(SPM_TRAINING_SEED)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines(multilingual=True)),
        model_writer=model,
        model_type="unigram",
        vocab_size=SPM_VOCAB_SIZE,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def _fairseq_vocab_and_charsmap(spm_model: bytes) -> tuple[list[tuple[str, float]], bytes]:
    """XLM-R ids (<s> <pad> </s> <unk>, SentencePiece pieces after its own three, <mask>) and normalizer."""
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(spm_model)
    pieces = [(piece.piece, piece.score) for piece in proto.pieces[3:]]
    vocab = [*((token, 0.0) for token in ROBERTA_SPECIAL_TOKENS[:4]), *pieces, ("<mask>", 0.0)]
    return vocab, bytes(proto.normalizer_spec.precompiled_charsmap)


def _save_model(model_class: type[PreTrainedModel], config: PretrainedConfig, path: Path, seed: int) -> None:
    # fork_rng keeps the global torch RNG of the test session untouched by the builders.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model.save_pretrained(str(path))
