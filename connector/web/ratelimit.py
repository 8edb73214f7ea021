"""RATE_LIMIT: how fast one caller may run blocks, with Flask-Limiter.

Counted per checked identity (an X-API-Key from CONNECTOR_API_KEYS, or the RapidAPI user
behind a right proxy secret, by SHA-256: never stored as is), else per client address; one
count for all blocks and both block routes. The moving window makes the limit exact:
20/second means at most 20 calls in any second. With REDIS_URL the counts live in Redis
(exact across instances); without, in each worker's memory. If Redis stops answering, the
limiter counts in memory until it is back rather than refuse every call. Catalogue routes
and probes are never limited.
"""

from __future__ import annotations

import contextlib
import time

from flask import Flask, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.storage import MemoryStorage

from connector.errors import RateLimited, UnknownBlock
from connector.web.blueprint import BLOCK_ENDPOINT
from connector.web.context import current_invocation, engine
from connector.web.envelope import error_response


def caller_key() -> str:
    """Whom a call is counted against: the identity authentication checked (an X-API-Key
    from CONNECTOR_API_KEYS, or RapidAPI's user behind a right proxy secret), hashed; else its
    address. Never an unchecked header: a caller would draw a new allowance with every
    made-up value."""
    identity = current_invocation().identity
    if identity:
        return identity
    return "addr:" + (request.remote_addr or "unknown")


def settle_timers(limiter: Limiter) -> None:
    """End the expiry timers limits' in-memory storages start when made (the fallback next to
    Redis, or the store itself without it). The app is built in gunicorn's master, before the
    fork: under gevent such a timer is a greenlet that would then first run in each worker,
    where threading no longer knows it, and print a KeyError traceback at start. Ended here,
    in the master, each storage starts its timer again when a worker first counts a call."""
    for storage in (limiter._storage, getattr(limiter, "_fallback_storage", None)):
        timer = getattr(storage, "timer", None) if isinstance(storage, MemoryStorage) else None
        if timer is not None:
            timer.cancel()
            timer.join()


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
    settle_timers(limiter)

    def refused(error: RateLimitExceeded):
        name = (request.view_args or {}).get("name", "")
        with contextlib.suppress(UnknownBlock):  # an unknown name is counted without a block
            engine().find(current_invocation(), name)
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
