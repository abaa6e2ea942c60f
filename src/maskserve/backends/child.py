"""Run a build (an ONNX export, an int8 graph) in a child process, so the memory it takes is returned when
the child exits.

Exporting a bert-base and running ONNX Runtime's transformer optimizer on it peaks at about 3.5 GB, and a
process that did it keeps most of that (2.9 GB after the build, against 0.9 GB for a server that found the
graph cached): allocators do not give it back. Built in a child, the server that serves the graph holds only
the session. A build is a module-level function and a picklable job (a frozen dataclass), started with
``multiprocessing``'s spawn (a fork would copy the server's threads and memory); it writes into the scratch
directory its job names, and the parent publishes it. Its log lines come back to the parent's log at debug,
its failure as a ValueError with its message.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TypeVar

logger = logging.getLogger(__name__)

J = TypeVar("J")

# The test suite builds in-process, where it can patch a build and skip a child's start-up; servers build in
# a child, as deployed (the tests cover that path too).
IN_PROCESS = False
# The last lines a build printed that come back to the parent's debug log.
_MAX_LINES = 2000


def run_build(build: Callable[[J], None], job: J) -> None:
    """``build(job)``, in a child process unless IN_PROCESS; a ValueError when it fails."""
    if IN_PROCESS:
        build(job)
        return
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(build, job, sender), name="maskserve-build", daemon=True)
    process.start()
    sender.close()  # the child holds the only sending end: its exit, however it ends, is an EOF here
    try:
        error, lines = receiver.recv()
    except EOFError:
        error, lines = None, []
        process.join()
        error = f"the build process ended without an answer (exit status {process.exitcode})"
    finally:
        receiver.close()
    process.join()
    for line in lines:
        logger.debug("build: %s", line)
    if error is not None:
        raise ValueError(error)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def _child(build: Callable[[J], None], job: J, sender: Connection) -> None:
    # What the libraries print (progress bars, exporter warnings, C++ logs) goes to a file, not into the
    # server's log stream; its lines come back with the log records.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as printed:
        for stream in (1, 2):
            os.dup2(printed.fileno(), stream)
        handler = _Lines()
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        error: str | None = None
        try:
            build(job)
        except Exception as exc:
            error = str(exc) or type(exc).__name__
        sys.stdout.flush()
        sys.stderr.flush()
        printed.seek(0)
        lines = handler.lines + [line.rstrip() for line in printed if line.strip()]
    sender.send((error, lines[-_MAX_LINES:]))
    sender.close()
