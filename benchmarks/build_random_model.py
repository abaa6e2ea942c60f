"""Build a random-weight ``*ForMaskedLM`` with a real model's shapes, offline, for benchmarks.

The weights are random, so predictions are meaningless, but the compute per token is the real model's.

    python benchmarks/build_random_model.py --config bert-base-uncased \\
        --tokenizer ../shared/models/tiny-random-bert --out build/bench-bert-base
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

# The public google-bert/bert-base-uncased config.json.
BUILTIN_CONFIGS: dict[str, dict[str, Any]] = {
    "bert-base-uncased": {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "vocab_size": 30522,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    },
}
# Everything a tokenizer may be saved as; weights, config.json and READMEs are not copied.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "sentencepiece.model",
    "tokenizer.model",
)


def load_config_dict(name_or_path: str) -> dict[str, Any]:
    if name_or_path in BUILTIN_CONFIGS:
        return dict(BUILTIN_CONFIGS[name_or_path])
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        known = ", ".join(BUILTIN_CONFIGS)
        raise SystemExit(f"--config must be one of {known} or a config.json path; {path} does not exist")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def build(config_dict: dict[str, Any], tokenizer_dir: Path, out: Path, seed: int) -> None:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    copied = [name for name in TOKENIZER_FILES if (tokenizer_dir / name).is_file()]
    if not copied:
        raise SystemExit(f"{tokenizer_dir} holds no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    data = dict(config_dict)
    model_type = data.pop("model_type", None)
    if not model_type:
        raise SystemExit("the config has no model_type")
    config = AutoConfig.for_model(model_type, **data)
    # Token ids beyond the embedding table would crash at the first request instead of here.
    if len(tokenizer) > config.vocab_size:
        raise SystemExit(f"the tokenizer has {len(tokenizer)} tokens, vocab_size is {config.vocab_size}")

    torch.manual_seed(seed)
    architectures = list(data.get("architectures") or [])
    factory: Any = AutoModelForMaskedLM.from_config
    if architectures and hasattr(transformers, architectures[0]):
        factory = getattr(transformers, architectures[0])
    model = factory(config)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    for name in copied:
        shutil.copyfile(tokenizer_dir / name, out / name)
    (out / "README.md").write_text(
        f"RANDOM weights (torch seed {seed}), NOT pretrained: predictions are meaningless.\n"
        f"Built by benchmarks/build_random_model.py; tokenizer copied from {tokenizer_dir}.\n",
        encoding="utf-8",
    )
    params = sum(p.numel() for p in model.parameters())
    print(f"{type(model).__name__}: {params / 1e6:.1f}M parameters, tokenizer {', '.join(copied)} -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--config", required=True, help=f"built-in name ({', '.join(BUILTIN_CONFIGS)}) or a config.json path"
    )
    parser.add_argument("--tokenizer", required=True, type=Path, help="directory holding the tokenizer files")
    parser.add_argument("--out", required=True, type=Path, help="output model directory")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for the weights (default: 0)")
    args = parser.parse_args()
    if not args.tokenizer.is_dir():
        sys.exit(f"--tokenizer {args.tokenizer} is not a directory")
    build(load_config_dict(args.config), args.tokenizer, args.out, args.seed)


if __name__ == "__main__":
    main()
