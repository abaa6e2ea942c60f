"""Run a ``*ForMaskedLM``'s LM head only at the mask positions.

The head (transform + vocabulary projection) costs about as much as two encoder layers per token on a
bert-base, and a request needs it at one position out of ~20. Every masked-LM in transformers calls one
head module on the encoder's hidden states; a forward pre-hook on that module swaps the [batch, seq, hidden]
states for the [masks, hidden] rows at the masks, so the model's own forward returns [masks, vocab] logits.
This keeps each architecture's head code (tied decoders, biases, activations) exactly as transformers has it.
Where the layout allows, the encoder's last layer runs at the masks only too (see ``last_layer``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import torch
from torch import nn

from maskserve.backends.last_layer import LastLayer, at_masks, find_last_layer

logger = logging.getLogger(__name__)

# The first head module each architecture calls on the hidden states, in the order to try them.
# BERT-likes: cls; RoBERTa-likes: lm_head; ALBERT: predictions; ELECTRA generator: generator_predictions;
# DistilBERT: vocab_transform; ModernBERT: head; DeBERTa-v2 (non-legacy): lm_predictions.
_HEAD_NAMES = ("cls", "lm_head", "predictions", "generator_predictions", "vocab_transform", "head")


def find_head(model: nn.Module) -> nn.Module | None:
    predictions = getattr(model, "lm_predictions", None)
    if getattr(model, "legacy", None) is False and isinstance(predictions, nn.Module):
        return predictions
    prefix = getattr(model, "base_model_prefix", "")
    for name in _HEAD_NAMES:
        module = getattr(model, name, None)
        if name != prefix and isinstance(module, nn.Module):
            return module
    return None


class MaskedHead:
    """Computes logits at given (row, column) positions, through the head hook when it is known to work."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        # Per thread: several model workers may run the same model at once.
        self._local = threading.local()
        head = find_head(model)
        self.enabled = head is not None
        last = find_last_layer(model) if head is not None else None
        self.last_layer = last is not None
        if head is not None:
            head.register_forward_pre_hook(self._gather)
        if last is not None:
            self._trim(last)

    def _trim(self, last: LastLayer) -> None:
        # An instance attribute shadows the class's forward: no hook can skip a module's own computation,
        # and wrapping the layer in another module would rename its weights (quantization and ONNX node
        # scopes go by those names). With no mask index set, the layer runs whole as before.
        whole = last.module.forward

        def forward(
            hidden_states: torch.Tensor, attention_mask: Any = None, *args: Any, **kwargs: Any
        ) -> Any:
            index: tuple[torch.Tensor, torch.Tensor] | None = getattr(self._local, "index", None)
            cross = any(a is not None for a in args) or kwargs.get("encoder_hidden_states") is not None
            if index is None or not self.last_layer or cross:
                return whole(hidden_states, attention_mask, *args, **kwargs)
            return at_masks(last, hidden_states, attention_mask, *index)

        last.module.forward = forward

    def _gather(self, _module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        index: tuple[torch.Tensor, torch.Tensor] | None = getattr(self._local, "index", None)
        if index is None:
            return None
        rows, cols = index
        return (args[0][rows, cols], *args[1:])

    def _full(self, inputs: dict[str, torch.Tensor], rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(**inputs).logits
        return logits[rows, cols]

    def logits(self, inputs: dict[str, torch.Tensor], rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """[masks, vocab] logits for the positions ``rows[i], cols[i]``."""
        if not self.enabled:
            return self._full(inputs, rows, cols)
        self._local.index = (rows, cols)
        try:
            out: torch.Tensor = self.model(**inputs).logits
        finally:
            self._local.index = None
        return out

    def verify(self, inputs: dict[str, torch.Tensor], rows: torch.Tensor, cols: torch.Tensor) -> bool:
        """Compare the fast path with the full model once, and fall back step by step where they differ:
        first to the whole last layer, then to the head at every token."""
        if not self.enabled:
            return False
        with torch.inference_mode():
            full = self._full(inputs, rows, cols).float()
        if self.last_layer:
            if self._agrees(inputs, rows, cols, full):
                return True
            logger.warning("last-layer-at-masks path disagrees with the full model; running the layer whole")
            self.last_layer = False
        if not self._agrees(inputs, rows, cols, full):
            logger.warning(
                "head-at-masks path disagrees with the full head; computing the head at every token"
            )
            self.enabled = False
        return self.enabled

    def _agrees(
        self, inputs: dict[str, torch.Tensor], rows: torch.Tensor, cols: torch.Tensor, full: Any
    ) -> bool:
        try:
            with torch.inference_mode():
                fast = self.logits(inputs, rows, cols).float()
        except Exception as exc:
            logger.warning("the fast path failed: %s", exc)
            return False
        return fast.shape == full.shape and torch.allclose(fast, full, atol=1e-3, rtol=1e-3)


class MaskLogitsModule(nn.Module):
    """``(ids, attention, [token types], rows, cols) -> [masks, vocab]`` logits, for export to ONNX."""

    def __init__(self, model: nn.Module, *, token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.head = MaskedHead(model)
        self.token_types = token_types
        # The exporter restores the wrapper's mode afterwards; matching the model's keeps dropout off.
        self.train(model.training)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if self.token_types:
            input_ids, attention_mask, token_type_ids, rows, cols = tensors
            inputs = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
            }
        else:
            input_ids, attention_mask, rows, cols = tensors
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.head.logits(inputs, rows, cols)
