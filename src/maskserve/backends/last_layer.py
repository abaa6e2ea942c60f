"""Run the encoder's last layer at the mask positions only.

Nothing reads the last layer's output except the LM head, and the head reads it at the masks. Every part
of a post-LN encoder layer is per token except attention, and attention needs every token only for its
keys and values: the queries, the attention output projection, both layer norms and the feed-forward block
are needed at the masks alone. On a bert-base with one mask in a 21-token sentence that skips 5/6 of the
last layer, about 7 % of the encoder. The result is the same numbers the full layer gives at those rows.

Only layouts known to be post-LN with plain (absolute-position) attention get this: BERT-likes and
DistilBERT. Anything else (ALBERT shares one layer object between all layers, ModernBERT mixes local and
rotary attention, pre-LN variants normalise first) runs its last layer whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Model types whose layers are BertLayer-shaped: attention.self.{query,key,value}, attention.output,
# intermediate, output. (xlm-roberta-xl and megatron-bert share the names but normalise first: not here.)
_BERT_LAYERS = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "data2vec-text"}

# (hidden states at the masks, attention context at the masks) -> the layer's output at the masks
Finish = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LastLayer:
    """The last layer of an encoder, taken apart into the pieces that :func:`at_masks` recombines."""

    module: nn.Module
    query: nn.Module
    key: nn.Module
    value: nn.Module
    heads: int
    head_size: int
    scaling: float
    finish: Finish
    # Every module that runs at the mask rows only (the query and what ``finish`` calls).
    mask_rows_only: tuple[nn.Module, ...]


def _bert(layer: Any) -> LastLayer:
    attention = layer.attention.self

    def finish(picked: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        hidden = layer.attention.output(context, picked)
        out: torch.Tensor = layer.output(layer.intermediate(hidden), hidden)
        return out

    return LastLayer(
        layer,
        attention.query,
        attention.key,
        attention.value,
        int(attention.num_attention_heads),
        int(attention.attention_head_size),
        float(attention.scaling),
        finish,
        (attention.query, layer.attention.output, layer.intermediate, layer.output),
    )


def _distilbert(layer: Any) -> LastLayer:
    attention = layer.attention

    def finish(picked: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        hidden = layer.sa_layer_norm(attention.out_lin(context) + picked)
        out: torch.Tensor = layer.output_layer_norm(layer.ffn(hidden) + hidden)
        return out

    return LastLayer(
        layer,
        attention.q_lin,
        attention.k_lin,
        attention.v_lin,
        int(attention.n_heads),
        int(attention.attention_head_size),
        float(attention.scaling),
        finish,
        (attention.q_lin, attention.out_lin, layer.sa_layer_norm, layer.ffn, layer.output_layer_norm),
    )


def find_last_layer(model: nn.Module) -> LastLayer | None:
    """The last encoder layer of a model whose layout is known to allow it, else None."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_decoder", False):
        return None
    # Relative position types add a query-key term to the scores that this does not compute.
    if getattr(config, "position_embedding_type", "absolute") not in ("absolute", None):
        return None
    model_type = getattr(config, "model_type", "")
    base = getattr(model, "base_model", None)
    try:
        if model_type in _BERT_LAYERS:
            return _bert(base.encoder.layer[-1])  # type: ignore[union-attr]
        if model_type == "distilbert":
            return _distilbert(base.transformer.layer[-1])  # type: ignore[union-attr]
    except (AttributeError, IndexError, TypeError):
        return None  # a model of that type laid out differently (remote code, a newer transformers)
    return None


def _bias(mask: torch.Tensor | None, rows: torch.Tensor, cols: torch.Tensor, dtype: Any) -> Any:
    """The additive attention bias of each mask's query row, shaped [masks, 1 or heads, 1, keys].

    Layers get a [batch, 1 or heads, queries or 1, keys] mask: additive floats (eager attention), booleans
    meaning "may attend" (SDPA), or None when nothing is padded.
    """
    if mask is None:
        return None
    picked = mask[rows, :, cols] if mask.shape[2] > 1 else mask[rows, :, 0]
    if picked.dtype == torch.bool:
        picked = torch.zeros(picked.shape, dtype=dtype, device=picked.device).masked_fill(
            ~picked, torch.finfo(dtype).min
        )
    return picked.unsqueeze(2).to(dtype)


def at_masks(
    layer: LastLayer, hidden: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """The layer's output at ``(rows[i], cols[i])``, placed in a [batch, seq, hidden] tensor of zeros.

    The zeros keep the shape the model expects downstream; only the LM head reads the result, and it reads
    the mask positions.
    """
    batch, length, _ = hidden.shape
    picked = hidden[rows, cols]
    query = layer.query(picked).view(-1, layer.heads, 1, layer.head_size)
    # Keys and values for every token, then one copy per mask of its own sentence's.
    key = layer.key(hidden).view(batch, length, layer.heads, layer.head_size).transpose(1, 2)[rows]
    value = layer.value(hidden).view(batch, length, layer.heads, layer.head_size).transpose(1, 2)[rows]
    scores = torch.matmul(query, key.transpose(-1, -2)) * layer.scaling
    bias = _bias(mask, rows, cols, scores.dtype)
    if bias is not None:
        scores = scores + bias
    context = torch.matmul(scores.softmax(dim=-1), value).reshape(picked.shape[0], -1)
    out = layer.finish(picked, context)
    return torch.zeros_like(hidden).index_put((rows, cols), out)
