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
    """The key of ``Bearer <key>``, or of ``Bearer: <key>``: the Hugging Face Inference API's documentation
    writes the header with that colon, and clients copied from it send it so."""
    if not header:
        return None
    text = header.strip()
    if text[:6].lower() != "bearer":
        return None
    rest = text[6:]
    if rest.startswith(":"):
        rest = rest[1:]
    elif not rest[:1].isspace():
        return None  # "Bearerabc": no scheme at all
    token = rest.strip()
    return token or None
