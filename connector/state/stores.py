"""Which stores a process keeps its state in: Redis, shared by every instance, when
``redis_url`` is set; else a SQLite file (Idempotency-Keys) and this process (tokens). How long
a claim or a token lock may last is the engine's to say (connector.engine.idempotency_keys)."""

from __future__ import annotations

from pathlib import Path

from connector.state.hook_store import HookStore, RedisHookStore, SQLiteHookStore
from connector.state.redis_store import RedisIdempotencyStore, RedisTokenCache, shared_client
from connector.state.sqlite_store import SQLiteIdempotencyStore
from connector.state.store import IdempotencyStore


def open_idempotency_store(settings, lease: float) -> IdempotencyStore:
    """The store these settings ask for: Redis, shared by every instance, when
    ``redis_url`` is set; else the SQLite file in ``data_dir``, shared by this machine's
    workers. ``lease``: how long a claim runs before it counts as abandoned. Opening it
    connects to nothing: Redis is first reached by the first call."""
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


def open_token_cache(settings, lock_timeout: float, wait: float) -> RedisTokenCache | None:
    """The shared token cache when ``settings.redis_url`` is set, else None (per process).
    ``lock_timeout``: how long one instance's fetch may hold the token lock; ``wait``: how
    long another waits for it before fetching on its own."""
    if not settings.redis_url:
        return None
    return RedisTokenCache(
        shared_client(settings.redis_url),
        settings.redis_prefix,
        lock_timeout=lock_timeout,
        wait=wait,
    )


def open_hook_store(settings, ttl: float, keep: int) -> HookStore:
    """Where hooks and their deliveries are kept: Redis when ``redis_url`` is set (every
    instance serves every hook), else the SQLite file of this machine. ``ttl`` and ``keep``
    bound the deliveries kept per hook (connector.hooks says how much)."""
    if settings.redis_url:
        return RedisHookStore(shared_client(settings.redis_url), settings.redis_prefix, ttl, keep)
    return SQLiteHookStore(Path(settings.data_dir) / "hooks.sqlite3", ttl, keep)
