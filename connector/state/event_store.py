"""What the instant triggers keep (connector/events): subscriptions, one cursor per watched client,
one snapshot per watched listing, the watcher's lease, and each delivery's record. One
interface, ``EventStore``; a SQLite file of this machine (``events.sqlite3`` in the data
directory) by default, Redis with REDIS_URL, so every instance sees the same subscriptions and
one watcher runs fleet-wide.

Records are JSON objects; the store keeps them whole and knows only the few fields it sorts
or finds them by (a subscription's id; a delivery's id, subscription, creation time and when
it is next due). What the fields mean is the events package's to say.

Redis keys (all under REDIS_PREFIX):

- ``ev:subs``: a hash, subscription id -> record (no expiry: a subscription lasts until it
  is removed);
- ``ev:cursor:<client>``: a watched client's cursor (no expiry: it is what "nothing twice"
  rests on);
- ``ev:snap:<place>``: a watched listing's snapshot (``client.created:<tenant>``,
  ``file.created:<tenant>/<client>``), no expiry either;
- ``ev:lease:<name>``: the watcher's lease, expiring after its ttl;
- ``ev:dlv:<id>``: a delivery's record; ``ev:dlvs:<subscription>``: a sorted set of its
  deliveries by creation time; ``ev:due``: a sorted set of the deliveries still to send, by
  when each is due. Deliveries expire DELIVERY_TTL after their last change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from connector.state.redis_store import REDIS_FAULTS, shared_client
from connector.state.sqlite import SQLiteFile
from connector.state.sqlite_store import FAULTS as SQLITE_FAULTS
from connector.state.store import store_fault

#: Each subscription's delivery log keeps at most this many records (the newest).
DELIVERIES_KEPT = 100
#: A listing's snapshot keeps at most this many keys (a tenant's clients, a client's files:
#: InstaMsg bounds both; this bounds what we keep whatever it does). A longer one is refused.
MAX_SNAPSHOT_KEYS = 10_000
#: A delivery's record is forgotten this long after its last change (seconds): longer than
#: the retry schedule's whole span, so a record is never lost while it is still tried.
DELIVERY_TTL = 3 * 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS ev_subscriptions (
    id TEXT PRIMARY KEY, created REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ev_cursors (client TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ev_snapshots (place TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ev_leases (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ev_deliveries (
    id TEXT PRIMARY KEY, subscription TEXT NOT NULL, created REAL NOT NULL,
    due REAL, changed REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ev_deliveries_log ON ev_deliveries (subscription, created);
CREATE INDEX IF NOT EXISTS ev_deliveries_due ON ev_deliveries (due);
"""


class EventStore:
    """The interface. Every method raises IDEMPOTENCY_UNAVAILABLE's error class (the state
    store is not answering) when the store cannot be read or written.

    A delivery record has ``id``, ``subscription``, ``created`` (unix seconds) and ``due``
    (unix seconds when it is next to be sent, or None once it is final)."""

    # -- subscriptions
    def add_subscription(self, record: dict) -> None:
        raise NotImplementedError

    def subscriptions(self) -> list[dict]:
        """Every subscription, oldest first."""
        raise NotImplementedError

    def subscription(self, ident: str) -> dict | None:
        raise NotImplementedError

    def save_subscription(self, record: dict) -> bool:
        """Replace an existing subscription's record; False when it no longer exists."""
        raise NotImplementedError

    def remove_subscription(self, ident: str) -> bool:
        """Remove a subscription and its delivery log; False when there was none."""
        raise NotImplementedError

    # -- cursors and the lease
    def cursor(self, client: str) -> dict | None:
        raise NotImplementedError

    def set_cursor(self, client: str, cursor: dict) -> None:
        raise NotImplementedError

    def snapshot(self, place: str) -> dict | None:
        """A watched listing's last snapshot: ``{"at": <when it was asked for>, "keys":
        [<its items' keys>]}``, or None before the first."""
        raise NotImplementedError

    def set_snapshot(self, place: str, snapshot: dict) -> None:
        """Keep a listing's snapshot in place of the last; one of more than
        MAX_SNAPSHOT_KEYS keys is refused (ValueError) and the last stays."""
        raise NotImplementedError

    def lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``ttl`` seconds, or renew it when ``owner`` holds it.
        False while another owner's lease runs."""
        raise NotImplementedError

    def release(self, name: str, owner: str) -> None:
        """Give the lease up, if ``owner`` holds it (a watcher stopping): another watcher
        takes it at its next round instead of when it runs out."""
        raise NotImplementedError

    # -- deliveries
    def add_delivery(self, record: dict) -> bool:
        """Keep a new delivery; False (and nothing changed) when its id is already kept."""
        raise NotImplementedError

    def delivery(self, ident: str) -> dict | None:
        raise NotImplementedError

    def save_delivery(self, record: dict) -> None:
        raise NotImplementedError

    def deliveries(self, subscription: str, limit: int) -> list[dict]:
        """A subscription's deliveries, newest first, at most ``limit``."""
        raise NotImplementedError

    def take_delivery(self, ident: str, now: float, until: float) -> bool:
        """Take a delivery that is due by ``now`` for sending, in one step: it is next due at
        ``until`` (sent again then if its sender dies first). False when it is not due, or
        another sender took it."""
        raise NotImplementedError

    def due_deliveries(self, now: float, limit: int) -> list[dict]:
        """Deliveries due by ``now``, the earliest first, at most ``limit``."""
        raise NotImplementedError


def _load(text) -> dict:
    return json.loads(text)


def _dump(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def _bounded(snapshot: dict) -> str:
    if len(snapshot["keys"]) > MAX_SNAPSHOT_KEYS:
        raise ValueError(f"a snapshot keeps at most {MAX_SNAPSHOT_KEYS} keys")
    return _dump(snapshot)


class SQLiteEventStore(EventStore):
    """The store of one machine: a SQLite file shared by its processes."""

    def __init__(self, path, clock=time.time):
        self.clock = clock
        try:
            self.db = SQLiteFile(Path(path), SCHEMA, one_connection=True)
        except SQLITE_FAULTS as exc:
            raise store_fault("sqlite", "events-open", exc) from None

    def _do(self, step, work):
        try:
            with self.db.transaction() as conn:
                return work(conn)
        except SQLITE_FAULTS as exc:
            raise store_fault("sqlite", "events-" + step, exc) from None

    def _read(self, step, sql, *params):
        try:
            return self.db.all(sql, *params)
        except SQLITE_FAULTS as exc:
            raise store_fault("sqlite", "events-" + step, exc) from None

    def add_subscription(self, record):
        self._do(
            "subscribe",
            lambda c: c.execute(
                "INSERT INTO ev_subscriptions (id, created, body) VALUES (?, ?, ?)",
                (record["id"], record["created"], _dump(record)),
            ),
        )

    def subscriptions(self):
        rows = self._read("list", "SELECT body FROM ev_subscriptions ORDER BY created, id")
        return [_load(row["body"]) for row in rows]

    def subscription(self, ident):
        rows = self._read("show", "SELECT body FROM ev_subscriptions WHERE id = ?", ident)
        return _load(rows[0]["body"]) if rows else None

    def save_subscription(self, record):
        return bool(
            self._do(
                "save",
                lambda c: (
                    c.execute(
                        "UPDATE ev_subscriptions SET body = ? WHERE id = ?",
                        (_dump(record), record["id"]),
                    ).rowcount
                ),
            )
        )

    def remove_subscription(self, ident):
        def work(conn):
            gone = conn.execute("DELETE FROM ev_subscriptions WHERE id = ?", (ident,)).rowcount
            conn.execute("DELETE FROM ev_deliveries WHERE subscription = ?", (ident,))
            return gone

        return bool(self._do("remove", work))

    def cursor(self, client):
        rows = self._read("cursor", "SELECT body FROM ev_cursors WHERE client = ?", client)
        return _load(rows[0]["body"]) if rows else None

    def set_cursor(self, client, cursor):
        self._do(
            "cursor",
            lambda c: c.execute(
                "INSERT OR REPLACE INTO ev_cursors (client, body) VALUES (?, ?)",
                (client, _dump(cursor)),
            ),
        )

    def snapshot(self, place):
        rows = self._read("snapshot", "SELECT body FROM ev_snapshots WHERE place = ?", place)
        return _load(rows[0]["body"]) if rows else None

    def set_snapshot(self, place, snapshot):
        body = _bounded(snapshot)
        self._do(
            "snapshot",
            lambda c: c.execute(
                "INSERT OR REPLACE INTO ev_snapshots (place, body) VALUES (?, ?)", (place, body)
            ),
        )

    def lease(self, name, owner, ttl):
        def work(conn):
            now = self.clock()
            row = conn.execute(
                "SELECT owner, expires FROM ev_leases WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row["owner"] != owner and row["expires"] > now:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO ev_leases (name, owner, expires) VALUES (?, ?, ?)",
                (name, owner, now + ttl),
            )
            return True

        return self._do("lease", work)

    def release(self, name, owner):
        self._do(
            "lease",
            lambda c: c.execute(
                "DELETE FROM ev_leases WHERE name = ? AND owner = ?", (name, owner)
            ),
        )

    def add_delivery(self, record):
        def work(conn):
            added = conn.execute(
                "INSERT OR IGNORE INTO ev_deliveries (id, subscription, created, due, changed,"
                " body) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record["id"],
                    record["subscription"],
                    record["created"],
                    record["due"],
                    self.clock(),
                    _dump(record),
                ),
            ).rowcount
            if added:  # the log keeps the newest DELIVERIES_KEPT, and none past its time
                conn.execute(
                    "DELETE FROM ev_deliveries WHERE subscription = ? AND due IS NULL AND id IN"
                    " (SELECT id FROM ev_deliveries WHERE subscription = ?"
                    "  ORDER BY created DESC, id DESC LIMIT -1 OFFSET ?)",
                    (record["subscription"], record["subscription"], DELIVERIES_KEPT),
                )
                conn.execute(
                    "DELETE FROM ev_deliveries WHERE changed < ?", (self.clock() - DELIVERY_TTL,)
                )
            return bool(added)

        return self._do("deliver", work)

    def delivery(self, ident):
        rows = self._read("delivery", "SELECT body FROM ev_deliveries WHERE id = ?", ident)
        return _load(rows[0]["body"]) if rows else None

    def save_delivery(self, record):
        self._do(
            "deliver",
            lambda c: c.execute(
                "UPDATE ev_deliveries SET due = ?, changed = ?, body = ? WHERE id = ?",
                (record["due"], self.clock(), _dump(record), record["id"]),
            ),
        )

    def deliveries(self, subscription, limit):
        rows = self._read(
            "log",
            "SELECT body FROM ev_deliveries WHERE subscription = ?"
            " ORDER BY created DESC, id DESC LIMIT ?",
            subscription,
            limit,
        )
        return [_load(row["body"]) for row in rows]

    def take_delivery(self, ident, now, until):
        return bool(
            self._do(
                "take",
                lambda c: (
                    c.execute(
                        "UPDATE ev_deliveries SET due = ? WHERE id = ? AND due IS NOT NULL"
                        " AND due <= ?",
                        (until, ident, now),
                    ).rowcount
                ),
            )
        )

    def due_deliveries(self, now, limit):
        rows = self._read(
            "due",
            "SELECT body FROM ev_deliveries WHERE due IS NOT NULL AND due <= ?"
            " ORDER BY due, created LIMIT ?",
            now,
            limit,
        )
        return [_load(row["body"]) for row in rows]


#: Take a lease that is free or expired, or renew one's own: one step, so two watchers
#: asking at once cannot both have it.
LEASE = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: Give a lease up only if one's own: one step, so a lease another watcher took meanwhile stays.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


#: Take a due delivery: move its place in the due set to ``until`` if it is due by ``now``.
TAKE = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


#: Keep a new delivery with its place in the due set and in its subscription's log, in one
#: step: a Redis stopped halfway never leaves a record kept but not due (asked again, the
#: keep would say "already kept", and the delivery would never be sent).
ADD = """
if not redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX') then return 0 end
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) end
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
"""


class RedisEventStore(EventStore):
    """The store every instance shares (REDIS_URL)."""

    def __init__(self, client, prefix: str, clock=time.time):
        self.redis = client
        self.prefix = prefix + "ev:"
        self.clock = clock
        self._lease = client.register_script(LEASE)
        self._release = client.register_script(RELEASE)
        self._take = client.register_script(TAKE)
        self._add = client.register_script(ADD)

    def _k(self, *parts) -> str:
        return self.prefix + ":".join(parts)

    def _run(self, step, work):
        try:
            return work(self.redis)
        except REDIS_FAULTS as exc:
            raise store_fault("redis", "events-" + step, exc) from None

    def add_subscription(self, record):
        self._run("subscribe", lambda r: r.hset(self._k("subs"), record["id"], _dump(record)))

    def subscriptions(self):
        found = self._run("list", lambda r: r.hvals(self._k("subs")))
        records = [_load(text) for text in found]
        return sorted(records, key=lambda rec: (rec["created"], rec["id"]))

    def subscription(self, ident):
        text = self._run("show", lambda r: r.hget(self._k("subs"), ident))
        return None if text is None else _load(text)

    def save_subscription(self, record):
        def work(r):
            if not r.hexists(self._k("subs"), record["id"]):
                return False
            r.hset(self._k("subs"), record["id"], _dump(record))
            return True

        return self._run("save", work)

    def remove_subscription(self, ident):
        def work(r):
            ids = [i.decode() for i in r.zrange(self._k("dlvs", ident), 0, -1)]
            pipe = r.pipeline(transaction=True)
            pipe.hdel(self._k("subs"), ident)
            pipe.delete(self._k("dlvs", ident))
            if ids:
                pipe.zrem(self._k("due"), *ids)
                pipe.delete(*(self._k("dlv", i) for i in ids))
            return pipe.execute()[0]

        return bool(self._run("remove", work))

    def cursor(self, client):
        text = self._run("cursor", lambda r: r.get(self._k("cursor", client)))
        return None if text is None else _load(text)

    def set_cursor(self, client, cursor):
        self._run("cursor", lambda r: r.set(self._k("cursor", client), _dump(cursor)))

    def snapshot(self, place):
        text = self._run("snapshot", lambda r: r.get(self._k("snap", place)))
        return None if text is None else _load(text)

    def set_snapshot(self, place, snapshot):
        body = _bounded(snapshot)
        self._run("snapshot", lambda r: r.set(self._k("snap", place), body))

    def lease(self, name, owner, ttl):
        millis = max(1, int(ttl * 1000))
        key = self._k("lease", name)
        return bool(self._run("lease", lambda r: self._lease(keys=[key], args=[owner, millis])))

    def release(self, name, owner):
        key = self._k("lease", name)
        self._run("lease", lambda r: self._release(keys=[key], args=[owner]))

    def _keep(self, pipe, record):
        pipe.set(self._k("dlv", record["id"]), _dump(record), ex=DELIVERY_TTL)
        if record["due"] is None:
            pipe.zrem(self._k("due"), record["id"])
        else:
            pipe.zadd(self._k("due"), {record["id"]: record["due"]})

    def add_delivery(self, record):
        def work(r):
            log = self._k("dlvs", record["subscription"])
            due = "" if record["due"] is None else repr(record["due"])
            keys = [self._k("dlv", record["id"]), self._k("due"), log]
            args = [_dump(record), DELIVERY_TTL, due, record["id"], repr(record["created"])]
            if not self._add(keys=keys, args=args, client=r):
                return False
            # The log keeps the newest DELIVERIES_KEPT; an older one still due stays due.
            old = r.zrange(log, 0, -DELIVERIES_KEPT - 1)
            finished = [i for i in old if r.zscore(self._k("due"), i) is None]
            if finished:
                r.zrem(log, *finished)
                r.delete(*(self._k("dlv", i.decode()) for i in finished))
            return True

        return self._run("deliver", work)

    def delivery(self, ident):
        text = self._run("delivery", lambda r: r.get(self._k("dlv", ident)))
        return None if text is None else _load(text)

    def save_delivery(self, record):
        def work(r):
            pipe = r.pipeline(transaction=True)
            self._keep(pipe, record)
            pipe.execute()

        self._run("deliver", work)

    def _records(self, r, ids) -> list[dict]:
        if not ids:
            return []
        texts = r.mget([self._k("dlv", i.decode() if isinstance(i, bytes) else i) for i in ids])
        return [_load(text) for text in texts if text is not None]

    def deliveries(self, subscription, limit):
        return self._run(
            "log",
            lambda r: self._records(r, r.zrevrange(self._k("dlvs", subscription), 0, limit - 1)),
        )

    def take_delivery(self, ident, now, until):
        due = self._k("due")
        return bool(
            self._run(
                "take", lambda r: self._take(keys=[due], args=[ident, repr(now), repr(until)])
            )
        )

    def due_deliveries(self, now, limit):
        return self._run(
            "due",
            lambda r: self._records(
                r, r.zrangebyscore(self._k("due"), "-inf", now, start=0, num=limit)
            ),
        )


def open_event_store(settings) -> EventStore:
    """Redis when ``settings.redis_url`` is set, else ``events.sqlite3`` in the data
    directory. Nothing connects before the first use."""
    if settings.redis_url:
        return RedisEventStore(shared_client(settings.redis_url), settings.redis_prefix)
    return SQLiteEventStore(Path(settings.data_dir) / "events.sqlite3")
