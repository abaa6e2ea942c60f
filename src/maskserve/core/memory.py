"""Giving freed memory back to the operating system after a model is unloaded.

Dropping the last reference frees a model's tensors, session and tokenizer, but glibc's allocator keeps
freed pages in its arenas (one per thread that allocated) for reuse; with models loaded and unloaded on
different threads, a server's resident memory climbs by tens of MB a load (measured: about 35 MB per load
over 40 loads, docs/benchmarks.md, "Churn"). ``malloc_trim(0)`` returns the free pages of every arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from functools import cache
from typing import Any


@cache
def _malloc_trim() -> Callable[[int], Any] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], Any] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    return trim


def release_memory() -> None:
    """Collect the reference cycles a model leaves (hooks, thread-locals) and return free heap to the OS."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
