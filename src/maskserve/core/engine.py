"""The engine: one loaded model behind its batcher, running tasks (:mod:`maskserve.core.task`) for every
protocol. A task plans a request (checks, cache key, what its rows need back); the engine runs that plan
with what every task shares: requests in flight, the response cache, the stage timings, the batcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from maskserve.backends.base import Backend
from maskserve.core.answer_size import AnswerLimit
from maskserve.core.batcher import Batcher, BatchLimits
from maskserve.core.cache import ResponseCache
from maskserve.core.context import RequestContext
from maskserve.core.decoding import DecodeLimits, WordDecoder
from maskserve.core.fill_mask import FILL_MASK, KSERVE_VALUES
from maskserve.core.rows import Need
from maskserve.core.split import length_runs, split_by_masks
from maskserve.core.task import Plan, Task
from maskserve.core.tokenize import TextEncoder
from maskserve.domain import (
    EncodedText,
    Float32Array,
    InputPredictions,
    KServeValue,
    MaskLogits,
    ModelInfo,
    OutputMode,
)
from maskserve.errors import BadRequest, ModelUnloaded, RequestTimeout
from maskserve.params import FillMaskParams, TaskParams

if TYPE_CHECKING:
    from maskserve.core.metrics import Metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
P = TypeVar("P", bound=TaskParams)
Stage = Literal["preprocess", "predict", "postprocess"]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to compute, without any serving policy: what ``load_model`` returns, for a server or a
    batch job alike."""

    info: ModelInfo
    encoder: TextEncoder
    backend: Backend
    # Bytes of its weight files, which the memory budget counts.
    weight_bytes: int = 0


@dataclass(frozen=True)
class RequestPolicy:
    """Per-request limits; every breach is a 4xx (or 504) that names the flag to change."""

    max_inputs: int = 256
    max_masks: int = 64
    # Scored tokens of one input (sentence scores: a forward row each).
    max_score_tokens: int = 512
    # Seconds a request may wait for and use the model; None: no limit.
    timeout_s: float | None = 60.0
    # What one request may ask of the word algorithms (docs/words.md).
    decode: DecodeLimits = field(default_factory=DecodeLimits)
    # The largest answer over HTTP (gRPC has its own, --grpc_max_send_message_length).
    answer_limit: AnswerLimit = field(
        default_factory=lambda: AnswerLimit(64 * 1024 * 1024, "--max_response_bytes")
    )
    # What the KServe-shaped outputs carry (--return_probabilities, --return_logits).
    output_mode: OutputMode = OutputMode.TOP1


class Engine:
    """Runs tasks on one model. Tokenization and post-processing run on a small thread pool, the model on
    the batcher's own threads, so the event loop only routes."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        policy: RequestPolicy | None = None,
        limits: BatchLimits | None = None,
        cache: ResponseCache | None = None,
        metrics: Metrics | None = None,
        workers: int = 1,
    ) -> None:
        self.model = model
        self.info = model.info
        self.encoder = model.encoder
        self.backend = model.backend
        self.weight_bytes = model.weight_bytes
        # Requests inside the engine now, and when the last one arrived: a model with requests in flight
        # is never unloaded, and the least recently used idle one goes first when room is needed.
        self.active = 0
        self.last_used = time.monotonic()
        self.closed = False
        self._drained: asyncio.Event | None = None
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
        self.words = WordDecoder(self.encoder, self.info.vocab_size, self.rows, self.policy.decode)
        # What makes an answer differ besides the task, text and parameters: part of every cache key.
        info = self.info
        self._identity = (info.model_id, info.revision, info.backend, info.dtype, info.max_length)

    @property
    def output_mode(self) -> OutputMode:
        return self.policy.output_mode

    # --- what tasks use ---

    async def off_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the engine's CPU threads (tokenizing, post-processing), off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn)

    @contextlib.contextmanager
    def stage(self, name: Stage) -> Iterator[None]:
        """Time a stage of a request into KServe's latency histograms."""
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.metrics is not None:
                self.metrics.observe_stage(name, time.perf_counter() - started)

    def check_inputs(self, texts: Sequence[str], what: str) -> None:
        """At least one text, at most --max_inputs, none holding a NUL. ``what``: what a text must be."""
        if not texts:
            raise BadRequest(f"no inputs: send at least one {what}")
        if len(texts) > self.policy.max_inputs:
            raise BadRequest(
                f"a request may hold at most {self.policy.max_inputs} inputs (--max_inputs), "
                f"this one has {len(texts)}"
            )
        for index, text in enumerate(texts):
            if "\x00" in text:
                where = f"input {index}" if len(texts) > 1 else "the input"
                raise BadRequest(f"{where} contains a NUL character (\\u0000), which no tokenizer accepts")

    async def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        with self.stage("preprocess"):
            return await self.off_loop(lambda: self.encoder.encode(texts))

    async def rows(self, encoded: Sequence[EncodedText], needs: Sequence[Need] | None = None) -> list[Any]:
        """What each item needs from the model (by default the logits at its masks), through the batcher,
        sharing batches with every other request, within the request timeout."""
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return await self.batcher.submit(encoded, needs)
        except TimeoutError:
            raise RequestTimeout(
                f"the model did not answer within {self.policy.timeout_s:g} s (--request_timeout_s); "
                "the server is overloaded or the request is too large"
            ) from None

    async def mask_logits(self, texts: Sequence[str]) -> list[MaskLogits]:
        """The logits at every mask of each text, through the batcher."""
        encoded = await self.encode(texts)
        with self.stage("predict"):
            logits = await self.rows(encoded)
        return [MaskLogits(encoded=e, logits=lg) for e, lg in zip(encoded, logits, strict=True)]

    # --- running a task ---

    async def run(
        self, task: Task[P, A], texts: Sequence[str], params: P, ctx: RequestContext | None = None
    ) -> list[A]:
        """One answer per text. ``ctx`` carries the transport's wishes in and the cache's part and the
        warnings out."""
        ctx = ctx if ctx is not None else RequestContext()
        async with self._in_flight():
            plan = await task.plan(self, texts, params, ctx)
            return await self._cached(task.name, texts, plan, ctx)

    async def fill_mask(
        self, texts: Sequence[str], params: FillMaskParams, ctx: RequestContext | None = None
    ) -> list[InputPredictions]:
        """Top-k candidates per mask per input, equal to ``pipeline("fill-mask")``."""
        return await self.run(FILL_MASK, texts, params, ctx)

    async def kserve_values(
        self, texts: Sequence[str], ctx: RequestContext | None = None
    ) -> list[KServeValue]:
        """KServe's per-input output in the server's output mode (top-1 text, probabilities or logits)."""
        return await self.run(KSERVE_VALUES, texts, FillMaskParams(), ctx)

    async def _cached(self, task: str, texts: Sequence[str], plan: Plan[A], ctx: RequestContext) -> list[A]:
        """The plan's answers for the texts the cache does not hold, the cache's for the rest, in order."""
        if not (ctx.use_cache and plan.cacheable and self.cache.enabled):
            return await plan.compute(texts)
        keys = [(*self._identity, task, *plan.key(text)) for text in texts]
        found: list[A | None] = [self.cache.get(k) for k in keys]
        missing = [i for i, hit in enumerate(found) if hit is None]
        hits = len(texts) - len(missing)
        ctx.hits, ctx.misses = ctx.hits + hits, ctx.misses + len(missing)
        if self.metrics is not None:
            self.metrics.observe_cache(hits, len(missing))
        if missing:
            computed = await plan.compute([texts[i] for i in missing])
            for i, value in zip(missing, computed, strict=True):
                found[i] = value
                self.cache.put(keys[i], value)
        return [value for value in found if value is not None]

    # --- the model ---

    def infer(self, texts: Sequence[str]) -> list[MaskLogits]:
        """Blocking, unbatched: tokenize and run the backend on one padded batch (CLI and benchmarks)."""
        encoded = self.encoder.encode(texts)
        logits = split_by_masks(encoded, self._run_batch(encoded))
        return [MaskLogits(encoded=e, logits=lg) for e, lg in zip(encoded, logits, strict=True)]

    def _run_batch(self, items: Sequence[EncodedText]) -> Float32Array:
        """Logits at every mask of ``items``, in order; as a few calls over similar lengths where padding
        costs compute (a CPU), one call where it is nearly free (a GPU)."""
        runs = length_runs([it.length for it in items]) if self.backend.splits_by_length else []
        if len(runs) <= 1:
            return self.backend.mask_logits(self.encoder.pad(items))
        pieces: list[Float32Array] = [np.empty(0, np.float32)] * len(items)
        for run in runs:
            chunk = [items[i] for i in run]
            logits = self.backend.mask_logits(self.encoder.pad(chunk))
            for i, part in zip(run, split_by_masks(chunk, logits), strict=True):
                pieces[i] = part
        return np.concatenate(pieces)

    def _on_batch(self, size: int, padded_tokens: int, waits: Sequence[float]) -> None:
        if self.metrics is not None:
            self.metrics.observe_batch(size, padded_tokens, waits)

    def _on_queue(self, inputs: int) -> None:
        if self.metrics is not None:
            self.metrics.set_queue_depth(inputs)

    # --- life ---

    @contextlib.asynccontextmanager
    async def _in_flight(self) -> AsyncIterator[None]:
        if self.closed:
            raise ModelUnloaded(f"Model {self.info.name} was unloaded; load it again or retry", retry_after=1)
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

    async def aclose(self) -> None:
        self.closed = True
        await self.batcher.close()
        self._cpu.shutdown(wait=True)
