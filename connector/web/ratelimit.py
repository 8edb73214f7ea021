"""RATE_LIMIT: how fast one caller may run blocks, with Flask-Limiter.

Counted per X-API-Key (by its SHA-256: the key itself is never stored), or per client
address where no keys are set; one count for all blocks and both block routes. The
moving window makes the limit exact: 20/second means at most 20 calls in any second.
With REDIS_URL the counts live in Redis (exact across instances); without, in each
worker's memory. If Redis stops answering, the limiter counts in memory until it is
back rather than refuse every call. Catalogue routes and probes are never limited.
"""

from __future__ import annotations

import hashlib
import time

from flask import Flask, request
from flask_limiter import Limiter, RateLimitExceeded

from connector.errors import RateLimited
from connector.web.blueprint import BLOCK_ENDPOINT
from connector.web.envelope import current_invocation, engine, error_response


def caller_key() -> str:
    """Whom a call is counted against: its API key (hashed), else its address. A key counts
    only where CONNECTOR_API_KEYS is set, so it was checked before this runs: an unchecked
    header would let a caller draw a new allowance with every made-up key."""
    given = request.headers.get("X-API-Key")
    if given and not engine().open:
        return "key:" + hashlib.sha256(given.encode("utf-8", "replace")).hexdigest()[:32]
    return "addr:" + (request.remote_addr or "unknown")


def install(app: Flask, settings) -> Limiter | None:
    """Limit block calls to ``settings.rate_limit``; nothing at all when it is empty.
    Call after the connector's blueprint is registered: API keys are checked first."""
    if not settings.rate_limit:
        return None
    limiter = Limiter(
        caller_key,
        application_limits=[settings.rate_limit],
        application_limits_exempt_when=lambda: request.endpoint != BLOCK_ENDPOINT,
        strategy="moving-window",
        storage_uri=settings.redis_url or "memory://",
        key_prefix=settings.redis_prefix + "ratelimit",
        in_memory_fallback_enabled=bool(settings.redis_url),
        swallow_errors=True,
        headers_enabled=False,
    )
    limiter.init_app(app)

    def refused(error: RateLimitExceeded):
        name = (request.view_args or {}).get("name", "")
        inv = current_invocation()
        try:
            inv.block = engine().registry.get(name).name
        except Exception:  # noqa: BLE001  (an unknown name: counted without a block)
            inv.block = None
        window = limiter.current_limit
        wait = max(1.0, window.reset_at - time.time()) if window is not None else 1.0
        return error_response(
            RateLimited(
                f"Too many calls: this caller may run {settings.rate_limit} (RATE_LIMIT). "
                "Wait for Retry-After seconds, then send the call again; nothing was sent "
                "to InstaMsg.",
                retry_after_s=round(wait, 3),
            )
        )

    app.register_error_handler(RateLimitExceeded, refused)
    return limiter
