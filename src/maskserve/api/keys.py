"""API-key checks shared by the HTTP and gRPC transports."""

from __future__ import annotations

import hmac
from collections.abc import Iterable


def key_matches(presented: str, keys: Iterable[str]) -> bool:
    """Constant-time in the key's content: every configured key is compared, with no early exit."""
    given = presented.encode("utf-8")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode("utf-8"))
    return found


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
