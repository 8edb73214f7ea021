"""Hooks and their deliveries, kept for every instance: in the SQLite file of one machine, or in
Redis when REDIS_URL is set. One interface (``HookStore``), two stores that answer alike.

A hook is kept as the JSON object connector/hooks made of it (its secret included: the store
keeps what it is told; what is shown is connector/hooks' to decide). A delivery is kept under
its hook and its own id, newest first, and only for a bounded time and count: the store drops
what is older than ``ttl`` seconds and all but the newest ``keep`` of each hook on every write.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from connector.state.redis_store import REDIS_FAULTS, describe
from connector.state.sqlite import SQLiteFile
from connector.state.sqlite_store import FAULTS as SQLITE_FAULTS
from connector.state.store import store_fault

SCHEMA = """
CREATE TABLE IF NOT EXISTS hooks (
    id TEXT PRIMARY KEY, record TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS hook_deliveries (
    hook TEXT NOT NULL, id TEXT NOT NULL, received_at REAL NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (hook, id));
CREATE INDEX IF NOT EXISTS hook_deliveries_newest ON hook_deliveries (hook, received_at);
"""


class HookStore:
    """The interface. Every method raises ``IdempotencyUnavailable`` (the state store's one
    error: 503, nothing run) when the store cannot be read or written."""

    #: how long a delivery's record is kept (seconds), and how many are kept per hook
    ttl: float
    keep: int

    def put(self, hook_id: str, record: dict) -> None:
        raise NotImplementedError

    def get(self, hook_id: str) -> dict | None:
        raise NotImplementedError

    def all(self) -> list[dict]:
        """Every hook, oldest first."""
        raise NotImplementedError

    def delete(self, hook_id: str) -> bool:
        """Remove a hook and its deliveries; False when there was none."""
        raise NotImplementedError

    def record_delivery(self, hook_id: str, delivery_id: str, record: dict) -> None:
        """Keep (or replace) one delivery's record; ``record["received"]`` orders them."""
        raise NotImplementedError

    def delivery(self, hook_id: str, delivery_id: str) -> dict | None:
        raise NotImplementedError

    def deliveries(self, hook_id: str, limit: int) -> list[dict]:
        """The newest ``limit`` deliveries of a hook, newest first, none older than ``ttl``."""
        raise NotImplementedError


class SQLiteHookStore(HookStore):
    """Hooks in the SQLite file of one machine, shared by its workers."""

    def __init__(self, path, ttl: float, keep: int, clock=time.time):
        try:
            self.db = SQLiteFile(Path(path), SCHEMA, one_connection=True)
        except SQLITE_FAULTS as exc:
            raise store_fault("sqlite", "open", exc) from None
        self.ttl, self.keep, self.clock = ttl, keep, clock

    def _run(self, step, work):
        try:
            return work()
        except SQLITE_FAULTS as exc:
            raise store_fault("sqlite", step, exc) from None

    def put(self, hook_id, record):
        def work():
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO hooks (id, record, created_at) VALUES (?, ?, ?)",
                    (hook_id, json.dumps(record), self.clock()),
                )

        self._run("hook put", work)

    def get(self, hook_id):
        row = self._run(
            "hook get", lambda: self.db.one("SELECT record FROM hooks WHERE id = ?", hook_id)
        )
        return None if row is None else json.loads(row["record"])

    def all(self):
        rows = self._run(
            "hook list", lambda: self.db.all("SELECT record FROM hooks ORDER BY created_at, id")
        )
        return [json.loads(row["record"]) for row in rows]

    def delete(self, hook_id):
        def work():
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM hook_deliveries WHERE hook = ?", (hook_id,))
                return conn.execute("DELETE FROM hooks WHERE id = ?", (hook_id,)).rowcount

        return bool(self._run("hook delete", work))

    def record_delivery(self, hook_id, delivery_id, record):
        def work():
            now = self.clock()
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO hook_deliveries (hook, id, received_at, record) "
                    "VALUES (?, ?, ?, ?)",
                    (hook_id, delivery_id, record["received"], json.dumps(record)),
                )
                # Older than the ttl, or than the keep-th newest: both walk the index from its
                # old end, so a write costs the rows it drops, not the rows kept.
                conn.execute(
                    "DELETE FROM hook_deliveries WHERE hook = ? AND received_at < max(?, "
                    "coalesce((SELECT received_at FROM hook_deliveries WHERE hook = ? "
                    "ORDER BY received_at DESC LIMIT 1 OFFSET ?), 0))",
                    (hook_id, now - self.ttl, hook_id, self.keep - 1),
                )

        self._run("delivery put", work)

    def delivery(self, hook_id, delivery_id):
        row = self._run(
            "delivery get",
            lambda: self.db.one(
                "SELECT record FROM hook_deliveries WHERE hook = ? AND id = ? AND received_at >= ?",
                hook_id,
                delivery_id,
                self.clock() - self.ttl,
            ),
        )
        return None if row is None else json.loads(row["record"])

    def deliveries(self, hook_id, limit):
        rows = self._run(
            "delivery list",
            lambda: self.db.all(
                "SELECT record FROM hook_deliveries WHERE hook = ? AND received_at >= ? "
                "ORDER BY received_at DESC LIMIT ?",
                hook_id,
                self.clock() - self.ttl,
                min(limit, self.keep),
            ),
        )
        return [json.loads(row["record"]) for row in rows]


class RedisHookStore(HookStore):
    """Hooks in Redis, shared by every instance on it. Keys, all under the prefix:

    - ``hook:<id>``: the hook's JSON; ``hooks``: a sorted set of every hook id by creation;
    - ``hook-delivery:<id>:<delivery>``: a delivery's JSON, expiring after ``ttl``;
    - ``hook-deliveries:<id>``: a sorted set of a hook's delivery ids by reception, trimmed
      to ``keep`` and expiring ``ttl`` after its last write.
    """

    def __init__(self, client, prefix: str, ttl: float, keep: int, clock=time.time):
        self.client, self.prefix = client, prefix
        self.ttl, self.keep, self.clock = ttl, keep, clock

    def _run(self, step, work):
        try:
            return work()
        except REDIS_FAULTS as exc:
            raise store_fault(describe(self.client), step, exc) from None

    def _hook(self, hook_id):
        return f"{self.prefix}hook:{hook_id}"

    def _index(self):
        return f"{self.prefix}hooks"

    def _delivery(self, hook_id, delivery_id):
        return f"{self.prefix}hook-delivery:{hook_id}:{delivery_id}"

    def _deliveries(self, hook_id):
        return f"{self.prefix}hook-deliveries:{hook_id}"

    def put(self, hook_id, record):
        def work():
            with self.client.pipeline() as pipe:
                pipe.set(self._hook(hook_id), json.dumps(record))
                pipe.zadd(self._index(), {hook_id: self.clock()}, nx=True)
                pipe.execute()

        self._run("hook put", work)

    def get(self, hook_id):
        found = self._run("hook get", lambda: self.client.get(self._hook(hook_id)))
        return None if found is None else json.loads(found)

    def all(self):
        def work():
            ids = [raw.decode() for raw in self.client.zrange(self._index(), 0, -1)]
            if not ids:
                return []
            return [json.loads(v) for v in self.client.mget([self._hook(i) for i in ids]) if v]

        return self._run("hook list", work)

    def delete(self, hook_id):
        def work():
            ids = self.client.zrange(self._deliveries(hook_id), 0, -1)
            with self.client.pipeline() as pipe:
                pipe.delete(self._hook(hook_id))
                pipe.zrem(self._index(), hook_id)
                pipe.delete(self._deliveries(hook_id))
                for raw in ids:
                    pipe.delete(self._delivery(hook_id, raw.decode()))
                return pipe.execute()[0]

        return bool(self._run("hook delete", work))

    def record_delivery(self, hook_id, delivery_id, record):
        index, ttl_ms = self._deliveries(hook_id), max(1, int(self.ttl * 1000))

        def work():
            with self.client.pipeline() as pipe:
                pipe.set(self._delivery(hook_id, delivery_id), json.dumps(record), px=ttl_ms)
                pipe.zadd(index, {delivery_id: record["received"]})
                pipe.zremrangebyscore(index, "-inf", self.clock() - self.ttl)
                pipe.zremrangebyrank(index, 0, -self.keep - 1)
                pipe.pexpire(index, ttl_ms)
                pipe.execute()

        self._run("delivery put", work)

    def delivery(self, hook_id, delivery_id):
        found = self._run(
            "delivery get", lambda: self.client.get(self._delivery(hook_id, delivery_id))
        )
        return None if found is None else json.loads(found)

    def deliveries(self, hook_id, limit):
        def work():
            since = self.clock() - self.ttl
            ids = self.client.zrevrangebyscore(
                self._deliveries(hook_id), "+inf", since, start=0, num=min(limit, self.keep)
            )
            if not ids:
                return []
            keys = [self._delivery(hook_id, raw.decode()) for raw in ids]
            return [json.loads(v) for v in self.client.mget(keys) if v]

        return self._run("delivery list", work)
