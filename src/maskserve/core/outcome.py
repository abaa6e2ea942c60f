"""What the engine tells a transport about one request besides its answer: where the answer came from and
the warnings a client should see (the pipeline's warnings, which it only logs)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RequestOutcome:
    """Filled in by the engine for one request."""

    # Inputs answered from the response cache, and inputs computed.
    hits: int = 0
    misses: int = 0
    # One line each, for the client: a target replaced by its first sub-token, a target ignored, ...
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``hit`` when every input came from the cache, ``miss`` otherwise (``bypass``: not consulted)."""
        if self.hits == 0 and self.misses == 0:
            return "bypass"
        return "hit" if self.misses == 0 else "miss"
