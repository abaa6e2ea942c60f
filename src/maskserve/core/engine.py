"""The engine facade: the one entry point every protocol calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from maskserve.backends.base import Backend
from maskserve.core import postprocess
from maskserve.core.tokenize import TextEncoder
from maskserve.domain import FillMaskParams, InputPredictions, KServeValue, MaskLogits, ModelInfo, OutputMode
from maskserve.errors import BadRequest

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Engine:
    """Runs fill-mask requests; all model work happens off the event loop."""

    def __init__(
        self, info: ModelInfo, encoder: TextEncoder, backend: Backend, output_mode: OutputMode
    ) -> None:
        self.info = info
        self.encoder = encoder
        self.backend = backend
        self.output_mode = output_mode
        # One worker: the backend already uses every core, a second would only contend with it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maskserve-model")

    async def _off_loop(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def validate(self, texts: Sequence[str], params: FillMaskParams) -> None:
        if not texts:
            raise BadRequest("no inputs: send at least one text containing " + self.info.mask_token)
        if not 1 <= params.top_k <= self.info.vocab_size:
            raise BadRequest(
                f"top_k must be between 1 and {self.info.vocab_size} (the vocabulary size), "
                f"got {params.top_k}"
            )

    def infer(self, texts: Sequence[str]) -> list[MaskLogits]:
        """Blocking: tokenize, run the backend on one padded batch, split the logits per input."""
        encoded = self.encoder.encode(texts)
        logits = self.backend.mask_logits(self.encoder.pad(encoded))
        out: list[MaskLogits] = []
        start = 0
        for item in encoded:
            end = start + len(item.mask_positions)
            out.append(MaskLogits(encoded=item, logits=logits[start:end]))
            start = end
        return out

    async def fill_mask(self, texts: Sequence[str], params: FillMaskParams) -> list[InputPredictions]:
        """Top-k candidates per mask per input, equal to ``pipeline("fill-mask")``."""
        self.validate(texts, params)

        def run() -> list[InputPredictions]:
            target_ids = self.encoder.target_ids(params.targets) if params.targets is not None else None
            return [
                postprocess.top_k_predictions(r, params, target_ids, self.encoder) for r in self.infer(texts)
            ]

        return await self._off_loop(run)

    async def kserve_values(self, texts: Sequence[str]) -> list[KServeValue]:
        """KServe's per-input output in the server's output mode (top-1 text, probabilities or logits)."""
        self.validate(texts, FillMaskParams())
        mode = self.output_mode

        def run() -> list[KServeValue]:
            return [postprocess.kserve_value(r, mode, self.encoder) for r in self.infer(texts)]

        return await self._off_loop(run)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
