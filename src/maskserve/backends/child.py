"""Run a build (an ONNX export, an int8 graph) in a child process, so the memory it takes is returned when
the child exits.

Exporting a bert-base and running ONNX Runtime's transformer optimizer on it peaks at about 3.5 GB, and a
process that did it keeps most of that (2.9 GB after the build, against 0.9 GB for a server that found the
graph cached): allocators do not give it back. Built in a child, the server that serves the graph holds only
the session. A build is a module-level function and a typed job (a frozen dataclass); both go to the child
pickled (the function by reference) on its stdin, and its outcome comes back pickled on its stdout.

The child is a fresh ``python -m maskserve.backends.child``, not a ``multiprocessing`` spawn: spawn runs the
parent's main script again in the child, so a user's script without an ``if __name__ == "__main__"`` guard
would load its models again there (and fail). The child writes into the scratch directory its job names,
and the parent publishes it. What it logs and prints comes back to the parent's log at debug, its failure
as a ValueError with its message.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
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
    done = subprocess.run(
        [sys.executable, "-m", "maskserve.backends.child"],
        input=pickle.dumps((build, job)),
        capture_output=True,
        check=False,
    )
    try:
        error, lines = pickle.loads(done.stdout)
    except Exception:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        error, lines = (
            f"the build process ended without an answer (exit status {done.returncode}) {tail[0]}",
            [],
        )
    for line in lines:
        logger.debug("build: %s", line)
    if error is not None:
        raise ValueError(error.strip())


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def main() -> None:
    build, job = pickle.loads(sys.stdin.buffer.read())
    answer = os.fdopen(os.dup(1), "wb")
    # What the libraries print (progress bars, exporter warnings, C++ logs) goes to a file, not to the
    # parent; its lines come back with the log records.
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
    answer.write(pickle.dumps((error, lines[-_MAX_LINES:])))
    answer.close()


if __name__ == "__main__":
    main()
