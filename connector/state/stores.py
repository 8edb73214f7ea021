"""Which stores a process keeps its state in: Redis, shared by every instance, when
``redis_url`` is set; else a SQLite file (Idempotency-Keys) and this process (tokens)."""

from __future__ import annotations

from pathlib import Path

from connector.state.idempotency import IdempotencyStore, Lifetimes, SQLiteIdempotencyStore
from connector.state.redis_store import RedisIdempotencyStore, RedisTokenCache, shared_client


def open_idempotency_store(settings) -> IdempotencyStore:
    """The store these settings ask for: Redis, shared by every instance, when
    ``redis_url`` is set; else the SQLite file in ``data_dir``, shared by this machine's
    workers. Opening it connects to nothing: Redis is first reached by the first call."""
    lease = Lifetimes.of(settings).lease
    if settings.redis_url:
        return RedisIdempotencyStore(
            shared_client(settings.redis_url),
            settings.redis_prefix,
            ttl=settings.idempotency_ttl,
            lease=lease,
        )
    return SQLiteIdempotencyStore(
        Path(settings.data_dir) / "idempotency.sqlite3", ttl=settings.idempotency_ttl, lease=lease
    )


def open_token_cache(settings) -> RedisTokenCache | None:
    """The shared token cache when ``settings.redis_url`` is set, else None (per process)."""
    if not settings.redis_url:
        return None
    # One token fetch is one POST, never retried: it ends within the upstream timeouts.
    fetch = settings.connect_timeout + settings.read_timeout + 5
    return RedisTokenCache(
        shared_client(settings.redis_url), settings.redis_prefix, lock_timeout=fetch, wait=fetch
    )
