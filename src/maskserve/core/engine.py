"""The engine facade: the one entry point every protocol calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from maskserve.backends.base import Backend
from maskserve.core import postprocess
from maskserve.core.batcher import Batcher, BatchLimits
from maskserve.core.split import length_runs
from maskserve.core.tokenize import TextEncoder
from maskserve.domain import (
    EncodedText,
    FillMaskParams,
    Float32Array,
    InputPredictions,
    KServeValue,
    MaskLogits,
    ModelInfo,
    OutputMode,
)
from maskserve.errors import BadRequest

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Engine:
    """Runs fill-mask requests. Tokenization and post-processing run on a small thread pool, the model on
    the batcher's own thread, so the event loop only routes."""

    def __init__(
        self,
        info: ModelInfo,
        encoder: TextEncoder,
        backend: Backend,
        output_mode: OutputMode,
        limits: BatchLimits | None = None,
    ) -> None:
        self.info = info
        self.encoder = encoder
        self.backend = backend
        self.output_mode = output_mode
        self.batcher = Batcher(self._run_batch, limits or BatchLimits())
        # Two threads keep a long post-processing job from holding up the next request's tokenization.
        self._cpu = ThreadPoolExecutor(max_workers=2, thread_name_prefix="maskserve-cpu")

    async def _off_loop(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn)

    def _run_batch(self, items: Sequence[EncodedText]) -> Float32Array:
        """Logits at every mask of ``items``, in order. On the CPU, as a few calls over similar lengths."""
        runs = length_runs([it.length for it in items]) if self.backend.device == "cpu" else []
        if len(runs) <= 1:
            return self.backend.mask_logits(self.encoder.pad(items))
        pieces: list[Float32Array] = [np.empty(0, np.float32)] * len(items)
        for run in runs:
            logits = self.backend.mask_logits(self.encoder.pad([items[i] for i in run]))
            start = 0
            for i in run:
                end = start + len(items[i].mask_positions)
                pieces[i] = logits[start:end]
                start = end
        return np.concatenate(pieces)

    def validate(self, texts: Sequence[str], params: FillMaskParams) -> None:
        if not texts:
            raise BadRequest("no inputs: send at least one text containing " + self.info.mask_token)
        if not 1 <= params.top_k <= self.info.vocab_size:
            raise BadRequest(
                f"top_k must be between 1 and {self.info.vocab_size} (the vocabulary size), "
                f"got {params.top_k}"
            )

    def infer(self, texts: Sequence[str]) -> list[MaskLogits]:
        """Blocking, unbatched: tokenize and run the backend on one padded batch (CLI and benchmarks)."""
        encoded = self.encoder.encode(texts)
        return self._split(encoded, self._run_batch(encoded))

    async def infer_async(self, texts: Sequence[str]) -> list[MaskLogits]:
        """Through the batcher: this request's texts share batches with everyone else's."""
        encoded = await self._off_loop(lambda: self.encoder.encode(texts))
        logits = await self.batcher.submit(encoded)
        return [MaskLogits(encoded=e, logits=lg) for e, lg in zip(encoded, logits, strict=True)]

    @staticmethod
    def _split(encoded: Sequence[EncodedText], logits: Float32Array) -> list[MaskLogits]:
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
        # Resolve targets before queueing, so a request with no valid target costs no compute.
        targets = params.targets
        target_ids = (
            await self._off_loop(lambda: self.encoder.target_ids(targets)) if targets is not None else None
        )
        results = await self.infer_async(texts)
        return await self._off_loop(
            lambda: [postprocess.top_k_predictions(r, params, target_ids, self.encoder) for r in results]
        )

    async def kserve_values(self, texts: Sequence[str]) -> list[KServeValue]:
        """KServe's per-input output in the server's output mode (top-1 text, probabilities or logits)."""
        self.validate(texts, FillMaskParams())
        results = await self.infer_async(texts)
        mode = self.output_mode
        return await self._off_loop(
            lambda: [postprocess.kserve_value(r, mode, self.encoder) for r in results]
        )

    async def aclose(self) -> None:
        await self.batcher.close()
        self._cpu.shutdown(wait=True)
