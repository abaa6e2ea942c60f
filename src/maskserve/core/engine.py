"""The engine facade: the one entry point every protocol calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np

from maskserve.backends.base import Backend
from maskserve.core import answer_size, postprocess
from maskserve.core.answer_size import AnswerLimit
from maskserve.core.batcher import Batcher, BatchLimits
from maskserve.core.cache import ResponseCache
from maskserve.core.decoding import DecodeLimits, WordDecoder
from maskserve.core.outcome import RequestOutcome
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
from maskserve.errors import BadRequest, ModelNotReady, RequestTimeout

if TYPE_CHECKING:
    from maskserve.core.metrics import Metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Stage = Literal["preprocess", "predict", "postprocess"]


@dataclass(frozen=True)
class RequestPolicy:
    """Per-request limits; every breach is a 4xx (or 504) that names the flag to change."""

    max_inputs: int = 256
    max_masks: int = 64
    # Seconds a request may wait for and use the model; None: no limit.
    timeout_s: float | None = 60.0
    # The largest answer over HTTP (gRPC has its own, --grpc_max_send_message_length).
    # What one request may ask of the word algorithms (docs/words.md).
    decode: DecodeLimits = field(default_factory=DecodeLimits)
    answer_limit: AnswerLimit = field(
        default_factory=lambda: AnswerLimit(64 * 1024 * 1024, "--max_response_bytes")
    )


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
        *,
        policy: RequestPolicy | None = None,
        cache: ResponseCache | None = None,
        metrics: Metrics | None = None,
        workers: int = 1,
        weight_bytes: int = 0,
    ) -> None:
        self.info = info
        self.weight_bytes = weight_bytes
        # Requests inside the engine now, and when the last one arrived: a model with requests in flight
        # is never unloaded, and the least recently used idle one goes first when room is needed.
        self.active = 0
        self.last_used = time.monotonic()
        self.closed = False
        self._drained: asyncio.Event | None = None
        self.encoder = encoder
        self.backend = backend
        self.output_mode = output_mode
        self.policy = policy or RequestPolicy()
        self.cache = cache if cache is not None else ResponseCache(0, 0)
        self.metrics = metrics
        self.batcher = Batcher(
            self._run_batch,
            limits or BatchLimits(),
            on_batch=self._on_batch,
            on_queue=self._on_queue,
            workers=workers,
        )
        # Two threads keep a long post-processing job from holding up the next request's tokenization.
        self._cpu = ThreadPoolExecutor(max_workers=2, thread_name_prefix="maskserve-cpu")
        self.words = WordDecoder(encoder, info.vocab_size, self._submit, self.policy.decode)
        # What makes an answer differ besides the text and parameters: part of every cache key.
        self._identity = (info.model_id, info.revision, info.backend, info.dtype, info.max_length)

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

    def _on_batch(self, size: int, padded_tokens: int, waits: Sequence[float]) -> None:
        if self.metrics is not None:
            self.metrics.observe_batch(size, padded_tokens, waits)

    def _on_queue(self, inputs: int) -> None:
        if self.metrics is not None:
            self.metrics.set_queue_depth(inputs)

    def validate(self, texts: Sequence[str], params: FillMaskParams) -> list[int]:
        """Check the request against the limits; returns each text's mask count."""
        if not texts:
            raise BadRequest("no inputs: send at least one text containing " + self.info.mask_token)
        if len(texts) > self.policy.max_inputs:
            raise BadRequest(
                f"a request may hold at most {self.policy.max_inputs} inputs (--max_inputs), "
                f"this one has {len(texts)}"
            )
        mask = self.info.mask_token
        counts: list[int] = []
        for index, text in enumerate(texts):
            where = f"input {index}" if len(texts) > 1 else "the input"
            if "\x00" in text:
                raise BadRequest(f"{where} contains a NUL character (\\u0000), which no tokenizer accepts")
            masks = text.count(mask)
            counts.append(masks)
            if masks > self.policy.max_masks:
                raise BadRequest(
                    f"{where} has {masks} {mask} tokens; at most {self.policy.max_masks} per input "
                    "are allowed (--max_masks)"
                )
        if not 1 <= params.top_k <= self.info.vocab_size:
            raise BadRequest(
                f"top_k must be between 1 and {self.info.vocab_size} (the vocabulary size), "
                f"got {params.top_k}"
            )
        return counts

    def infer(self, texts: Sequence[str]) -> list[MaskLogits]:
        """Blocking, unbatched: tokenize and run the backend on one padded batch (CLI and benchmarks)."""
        encoded = self.encoder.encode(texts)
        return self._split(encoded, self._run_batch(encoded))

    async def infer_async(self, texts: Sequence[str]) -> list[MaskLogits]:
        """Through the batcher: this request's texts share batches with everyone else's."""
        started = time.perf_counter()
        encoded = await self._off_loop(lambda: self.encoder.encode(texts))
        self._observe("preprocess", started)
        started = time.perf_counter()
        logits = await self._submit(encoded)
        self._observe("predict", started)
        return [MaskLogits(encoded=e, logits=lg) for e, lg in zip(encoded, logits, strict=True)]

    async def _submit(self, encoded: Sequence[EncodedText]) -> list[Float32Array]:
        """Logits at the masks of each item, through the batcher, within the request timeout."""
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return await self.batcher.submit(encoded)
        except TimeoutError:
            raise RequestTimeout(
                f"the model did not answer within {self.policy.timeout_s:g} s (--request_timeout_s); "
                "the server is overloaded or the request is too large"
            ) from None

    def _observe(self, stage: Stage, started: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_stage(stage, time.perf_counter() - started)

    @staticmethod
    def _split(encoded: Sequence[EncodedText], logits: Float32Array) -> list[MaskLogits]:
        out: list[MaskLogits] = []
        start = 0
        for item in encoded:
            end = start + len(item.mask_positions)
            out.append(MaskLogits(encoded=item, logits=logits[start:end]))
            start = end
        return out

    async def _cached(
        self,
        texts: Sequence[str],
        key: Callable[[str], tuple[object, ...]],
        compute: Callable[[Sequence[str]], Awaitable[list[R]]],
        use_cache: bool,
        outcome: RequestOutcome | None,
    ) -> list[R]:
        """``compute`` on the texts the cache does not hold, the cache for the rest, in the texts' order."""
        if not (use_cache and self.cache.enabled):
            return await compute(texts)
        keys = [(*self._identity, *key(text)) for text in texts]
        found: list[R | None] = [self.cache.get(k) for k in keys]
        missing = [i for i, hit in enumerate(found) if hit is None]
        hits = len(texts) - len(missing)
        if outcome is not None:
            outcome.hits, outcome.misses = outcome.hits + hits, outcome.misses + len(missing)
        if self.metrics is not None:
            self.metrics.observe_cache(hits, len(missing))
        if missing:
            computed = await compute([texts[i] for i in missing])
            for i, value in zip(missing, computed, strict=True):
                found[i] = value
                self.cache.put(keys[i], value)
        return [value for value in found if value is not None]

    @contextlib.asynccontextmanager
    async def _in_flight(self) -> AsyncIterator[None]:
        if self.closed:
            raise ModelNotReady(f"Model {self.info.name} was unloaded; load it again or retry", retry_after=1)
        self.active += 1
        self.last_used = time.monotonic()
        try:
            yield
        finally:
            self.active -= 1
            if self.active == 0 and self._drained is not None:
                self._drained.set()

    async def drained(self) -> None:
        """Return once no request is inside the engine (unloading waits for this)."""
        while self.active:
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            await self._drained.wait()

    async def fill_mask(
        self,
        texts: Sequence[str],
        params: FillMaskParams,
        *,
        use_cache: bool = True,
        outcome: RequestOutcome | None = None,
        answer_limit: AnswerLimit | None = None,
    ) -> list[InputPredictions]:
        async with self._in_flight():
            return await self._fill_mask(texts, params, use_cache, outcome, answer_limit)

    async def _fill_mask(
        self,
        texts: Sequence[str],
        params: FillMaskParams,
        use_cache: bool,
        outcome: RequestOutcome | None,
        answer_limit: AnswerLimit | None,
    ) -> list[InputPredictions]:
        """Top-k candidates per mask per input, equal to ``pipeline("fill-mask")``. ``outcome`` receives
        the cache's part and the warnings; ``answer_limit`` replaces the HTTP one (gRPC has its own)."""
        masks = self.validate(texts, params)
        # Resolve targets before queueing, so a request with no valid target costs no compute.
        targets = params.targets
        target_ids = None
        # Whole-word targets are resolved per text by the word decoder, never cut to a first sub-token.
        if targets is not None and params.target_scoring != "word":
            target_ids, warnings = await self._off_loop(lambda: self.encoder.target_ids(targets))
            if outcome is not None:
                outcome.warnings.extend(warnings)
        top_k = postprocess.effective_top_k(params.top_k, self.info.vocab_size, target_ids)
        estimate = answer_size.candidates_bytes(texts, masks, top_k, self.encoder.longest_token)
        answer_size.check(estimate, answer_limit or self.policy.answer_limit, len(texts))

        async def compute(todo: Sequence[str]) -> list[InputPredictions]:
            if params.words:
                return await self._words(todo, params)
            results = await self.infer_async(todo)
            started = time.perf_counter()
            try:
                return await self._off_loop(
                    lambda: [
                        postprocess.top_k_predictions(r, params, target_ids, self.encoder) for r in results
                    ]
                )
            finally:
                self._observe("postprocess", started)

        return await self._cached(texts, lambda t: ("fill", t, params), compute, use_cache, outcome)

    async def _words(self, texts: Sequence[str], params: FillMaskParams) -> list[InputPredictions]:
        """The word algorithms: each input's forward passes go through the batcher step by step."""
        started = time.perf_counter()
        encoded = await self._off_loop(lambda: self.encoder.encode(texts))
        self._observe("preprocess", started)
        started = time.perf_counter()
        results = await self.words.run(texts, encoded, params)
        self._observe("predict", started)
        return results

    async def kserve_values(
        self,
        texts: Sequence[str],
        *,
        use_cache: bool = True,
        outcome: RequestOutcome | None = None,
        answer_limit: AnswerLimit | None = None,
    ) -> list[KServeValue]:
        """KServe's per-input output in the server's output mode (top-1 text, probabilities or logits)."""
        async with self._in_flight():
            return await self._kserve_values(texts, use_cache, outcome, answer_limit)

    async def _kserve_values(
        self,
        texts: Sequence[str],
        use_cache: bool,
        outcome: RequestOutcome | None,
        answer_limit: AnswerLimit | None,
    ) -> list[KServeValue]:
        masks = self.validate(texts, FillMaskParams())
        mode = self.output_mode
        if mode is not OutputMode.TOP1:  # a number per vocabulary entry per mask: megabytes per input
            limit = answer_limit or self.policy.answer_limit
            estimate = answer_size.distributions_bytes(masks, self.info.vocab_size, limit.json_in_json)
            answer_size.check(estimate, limit, len(texts))

        async def compute(todo: Sequence[str]) -> list[KServeValue]:
            results = await self.infer_async(todo)
            started = time.perf_counter()
            try:
                return await self._off_loop(
                    lambda: [postprocess.kserve_value(r, mode, self.encoder) for r in results]
                )
            finally:
                self._observe("postprocess", started)

        # Probabilities and logits are a float per vocabulary entry per mask (megabytes per answer): caching
        # them would hold a few answers at most, so only the top-1 text is cached.
        cacheable = use_cache and mode is OutputMode.TOP1
        return await self._cached(texts, lambda t: ("kserve", t), compute, cacheable, outcome)

    async def aclose(self) -> None:
        self.closed = True
        await self.batcher.close()
        self._cpu.shutdown(wait=True)
