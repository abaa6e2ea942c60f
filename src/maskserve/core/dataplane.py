"""The one data plane every transport calls: it finds the model (waiting as the protocol's policy says) and
runs the task a request asks for. HTTP routes and gRPC methods only convert to and from the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskserve.core.context import RequestContext
from maskserve.core.engine import Engine
from maskserve.core.fill_mask import FILL_MASK, KSERVE_VALUES
from maskserve.core.registry import ModelRegistry
from maskserve.core.scoring import SCORE
from maskserve.core.task import Task
from maskserve.core.waiting import WaitPolicy
from maskserve.domain import TaskCall
from maskserve.errors import BadRequest, ModelUnloaded
from maskserve.protocols import v2

# Every task by the name protocols ask for it.
TASKS: dict[str, Task[Any, Any]] = {task.name: task for task in (FILL_MASK, KSERVE_VALUES, SCORE)}
# How often a request looks for its model again when it was unloaded between finding and using it (a model
# evicted to make room the moment it loaded, under churn).
_LOOKS = 3


@dataclass
class Served:
    """The model a request is served by, and how it was found (so it can be found again)."""

    name: str | None
    policy: WaitPolicy
    engine: Engine


class DataPlane:
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def model(self, name: str | None, policy: WaitPolicy) -> Served:
        """The model serving ``name`` (None: the default model), waiting as ``policy`` says."""
        registry = self.registry
        slot = registry.get(name, allow_hub=policy.allow_hub) if name is not None else registry.default()
        return Served(name, policy, await policy.engine(registry, slot, name))

    async def run(self, served: Served, call: TaskCall, ctx: RequestContext) -> list[Any]:
        """One answer per text of ``call``. A model unloaded after the request found it (to make room for
        another) is waited for again, as the protocol's policy says, instead of failing the request."""
        task = TASKS.get(call.task)
        if task is None:
            raise BadRequest(f"unknown task {call.task!r}; this server runs {', '.join(sorted(TASKS))}")
        ctx.warnings.extend(call.warnings)
        for _ in range(_LOOKS - 1):
            try:
                return await served.engine.run(task, call.texts, call.params, ctx)
            except ModelUnloaded:
                served.engine = (await self.model(served.name, served.policy)).engine
        return await served.engine.run(task, call.texts, call.params, ctx)

    async def v2_infer(
        self, served: Served, request: v2.InferenceRequest, ctx: RequestContext
    ) -> v2.InferenceResponse:
        """An Open Inference Protocol request, for REST and gRPC alike. The request's warnings (a target
        replaced by its first sub-token, ...) go into the response parameters as ``warning``, one line each,
        where V2 clients over REST and gRPC can read them."""
        call = v2.task_call(request)
        results = await self.run(served, call, ctx)
        response = v2.render(served.engine.info, request, call, results)
        if ctx.warnings:
            response.parameters = {**(response.parameters or {}), "warning": "\n".join(ctx.warnings)}
        return response
