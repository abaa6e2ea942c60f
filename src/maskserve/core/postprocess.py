"""From logits at the masks to the answers each protocol needs, computed as the pipeline computes them."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from maskserve.core.numeric import softmax, top_k
from maskserve.core.tokenize import TextEncoder
from maskserve.domain import (
    Candidate,
    InputPredictions,
    Int64Array,
    KServeValue,
    MaskLogits,
    OutputMode,
    Prediction,
)
from maskserve.params import FillMaskParams


def effective_top_k(top_k: int, vocab_size: int, target_ids: Int64Array | None) -> int:
    """The pipeline caps top_k at the number of targets; we also cap it at the vocabulary."""
    limit = vocab_size if target_ids is None else len(target_ids)
    return min(top_k, limit)


def top_k_predictions(
    result: MaskLogits, params: FillMaskParams, target_ids: Int64Array | None, encoder: TextEncoder
) -> InputPredictions:
    # Softmax over the whole vocabulary first, then the targets' columns: the pipeline's numbers.
    probs = softmax(result.logits)
    if target_ids is not None:
        probs = probs[..., target_ids]
    values, indices = top_k(probs, effective_top_k(params.top_k, result.logits.shape[-1], target_ids))

    encoded = result.encoded
    single_mask = len(encoded.mask_positions) == 1
    base = np.asarray(encoded.input_ids, dtype=np.int64)
    out: InputPredictions = []
    for mask_index, (row_values, row_indices) in enumerate(
        zip(values.tolist(), indices.tolist(), strict=True)
    ):
        position = encoded.mask_positions[mask_index]
        row: list[Candidate] = []
        for score, index in zip(row_values, row_indices, strict=True):
            token = int(target_ids[index]) if target_ids is not None else int(index)
            tokens = base.copy()
            tokens[position] = token
            # As the pipeline: pad ids filtered out (after the fill), and special tokens kept when other
            # masks must stay visible.
            if encoder.pad_token_id is not None:
                tokens = tokens[tokens != encoder.pad_token_id]
            sequence = encoder.decode(tokens, skip_special_tokens=single_mask)
            row.append(
                Prediction(score=score, token=token, token_str=encoder.token_str(token), sequence=sequence)
            )
        out.append(row)
    return out


@lru_cache(maxsize=4)
def _token_keys(vocab_size: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(vocab_size))


def kserve_value(result: MaskLogits, mode: OutputMode, encoder: TextEncoder) -> KServeValue:
    """KServe's fill-mask output for one input: top-1 text, or token id -> probability/logit per mask."""
    logits = result.logits
    if mode is OutputMode.TOP1:
        return encoder.decode(top_k(logits, 1)[1][:, 0].tolist())
    values = softmax(logits) if mode is OutputMode.PROBABILITIES else logits
    keys = _token_keys(values.shape[-1])
    per_mask = [dict(zip(keys, row, strict=True)) for row in values.tolist()]
    return per_mask[0] if len(per_mask) == 1 else per_mask
