"""Where maskserve keeps what it can rebuild: the user's cache directory."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/maskserve/<parts>``, else ``~/.cache/maskserve/<parts>``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "maskserve", *parts)
