"""A task: what the engine runs for one request (fill-mask today; the word algorithms are options of it).

A task plans a request before any compute: it checks the texts and parameters (a 400 costs no model
time), sizes the answer against the transport's limit, says how each text's answer is keyed in the response
cache, and returns the work that computes the answers, which asks the engine's batcher for rows in the form
it needs (:mod:`maskserve.core.rows`). The engine runs the plan (:meth:`Engine.run`). A new task is one module
with one such class, and a line in the data plane's table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from maskserve.params import TaskParams

if TYPE_CHECKING:
    from maskserve.core.context import RequestContext
    from maskserve.core.engine import Engine

A = TypeVar("A")
P_contra = TypeVar("P_contra", bound=TaskParams, contravariant=True)


@dataclass(frozen=True)
class Plan(Generic[A]):
    """The answers' computation for any subset of the request's texts, in their order."""

    compute: Callable[[Sequence[str]], Awaitable[list[A]]]
    # The cache key of one text's answer (besides the model and the task).
    key: Callable[[str], tuple[Hashable, ...]]
    cacheable: bool = True


class Task(Protocol[P_contra, A]):
    @property
    def name(self) -> str: ...

    async def plan(
        self, engine: Engine, texts: Sequence[str], params: P_contra, ctx: RequestContext
    ) -> Plan[A]:
        """Check the request and return its computation; raise a MaskserveError for a bad one."""
        ...
