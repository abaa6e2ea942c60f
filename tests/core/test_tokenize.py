from __future__ import annotations

from pathlib import Path

import numpy as np

from support.engines import engine_for


def test_token_str_is_the_decode_of_one_id(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    encoder = engine_for(path).encoder
    vocab = len(encoder.tokenizer)
    ids = [*range(min(vocab, 300)), vocab - 1]
    for _ in range(2):  # the second pass answers from what the first remembered
        assert [encoder.token_str(i) for i in ids] == [encoder.tokenizer.decode([i]) for i in ids]


def test_decode_takes_numpy_ids_as_a_list_of_ints(mlm_dir: tuple[str, Path]) -> None:
    _, path = mlm_dir
    encoder = engine_for(path).encoder
    (item,) = encoder.encode([f"the cat sat on the {encoder.mask_token} ."])
    ids = np.asarray(item.input_ids, dtype=np.int64)
    for skip in (True, False):
        want = encoder.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip)
        assert encoder.decode(ids, skip_special_tokens=skip) == want
        assert encoder.decode(list(ids), skip_special_tokens=skip) == want
