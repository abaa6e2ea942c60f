"""A job's progress on stderr: a progress bar with records/s and the time left when stderr is a terminal
(tqdm), else a plain line every few seconds (a log, a pod), nothing with ``--quiet``."""

from __future__ import annotations

import sys
import time
from typing import Any

# Seconds between the plain progress lines.
LINE_EVERY_S = 5.0


class Reporter:
    def __init__(self, total: int | None, *, done: int = 0, quiet: bool = False) -> None:
        self.total = total
        self.quiet = quiet
        self.started = time.monotonic()
        self.first = done
        self.last_line = self.started
        self.bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit=" records", dynamic_ncols=True, file=sys.stderr)

    def update(self, done: int, failed: int) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix(failed=failed, refresh=False)
            return
        now = time.monotonic()
        if now - self.last_line < LINE_EVERY_S:
            return
        self.last_line = now
        rate = (done - self.first) / max(now - self.started, 1e-9)
        left = ""
        if self.total and rate > 0:
            left = f", about {max(0.0, (self.total - done) / rate):.0f} s left"
        of = f"/{self.total}" if self.total else ""
        print(f"maskserve batch: {done}{of} records ({failed} failed), {rate:.1f} records/s{left}",
              file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
