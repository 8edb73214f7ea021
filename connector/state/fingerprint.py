"""One-way names for credentials: what the stores key tokens and Idempotency-Keys by."""

from __future__ import annotations

import hashlib


def fingerprint(*parts: str) -> str:
    """A stable, one-way name for credentials (cache keys, idempotency scopes)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
