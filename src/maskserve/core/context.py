"""What travels with one request through the data plane besides its texts and parameters: what the transport
asks of the engine (use the response cache or not, the largest answer it can carry) and what the engine
tells the transport back (where the answer came from, the warnings a client should see)."""

from __future__ import annotations

from dataclasses import dataclass, field

from maskserve.core.answer_size import AnswerLimit


@dataclass
class RequestContext:
    """One per request; the engine fills in ``hits``, ``misses`` and ``warnings``."""

    # x-use-cache / options.use_cache: false skips the response cache (neither read nor written).
    use_cache: bool = True
    # The transport's largest answer; None: the engine's own (HTTP's --max_response_bytes).
    answer_limit: AnswerLimit | None = None
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
