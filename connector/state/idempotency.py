"""Idempotency-Key: a repeated block call answers what the first one answered.

As Stripe defines it: the first completed answer (status and body, errors from
InstaMsg included) is kept under the key, scoped to the caller's credentials;
the same key with the same arguments replays it without calling InstaMsg; with
other arguments or another block it is refused (IDEMPOTENCY_KEY_REUSED); while
the first call still runs, IDEMPOTENCY_KEY_IN_USE. Calls refused before they ran
(validation, a bad body) are not kept, so a corrected retry can run.

``IdempotencyStore`` is the interface; ``SQLiteIdempotencyStore`` is the one
shared by all gunicorn workers of a machine, surviving restarts;
``connector.state.redis_store.RedisIdempotencyStore`` is the one shared by every instance
when REDIS_URL is set. ``connector.state.stores.open_idempotency_store`` picks between them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from connector.server import logs
from connector.state.sqlite import SQLiteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, block TEXT NOT NULL, request TEXT NOT NULL,
    state TEXT NOT NULL, status INTEGER, headers TEXT, body BLOB,
    started_at REAL NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (scope, key));
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
"""
MAX_KEY = 255


@dataclass
class Claim:
    """What the store says about a key: ``new`` (run it), ``replay`` (with the kept
    answer), ``reused`` (other arguments) or ``in_use`` (the first call still runs)."""

    kind: str
    status: int | None = None
    headers: list | None = None
    body: bytes | None = None


def request_digest(block: str, args: dict, context_key: str, rapid: bool) -> str:
    """A digest of what was asked: the block, its arguments as sent, and the answer's form."""

    def plain(value):
        if hasattr(value, "stream") and hasattr(value, "filename"):  # an uploaded file part
            stream = value.stream
            digest = hashlib.sha256()
            stream.seek(0)
            while chunk := stream.read(65536):
                digest.update(chunk)
            stream.seek(0)
            return {"file": value.filename, "sha256": digest.hexdigest()}
        return str(value)

    text = json.dumps(
        [block, args, context_key, rapid], sort_keys=True, default=plain, ensure_ascii=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class IdempotencyStore:
    """The interface; see SQLiteIdempotencyStore."""

    def claim(self, scope, key, block, request) -> Claim:
        """Claim ``key`` for a call, or say what it holds (see ``Claim``)."""
        raise NotImplementedError

    def complete(self, scope, key, status, headers, body) -> None:
        """Keep a claimed call's finished answer for replays."""
        raise NotImplementedError

    def release(self, scope, key) -> None:
        """Free a claimed key: its call was refused before it ran."""
        raise NotImplementedError

    def check(self) -> str | None:
        """Readiness: None when the store answers, else a short text naming what failed."""
        raise NotImplementedError


def lost(step: str, exc: BaseException) -> None:
    """The call ran and its answer goes out; only keeping it failed: say so, and let the
    claim's lease free the key."""
    logs.event(
        f"idempotency store: {step} failed; the key frees itself when its lease runs out",
        logging.WARNING,
        error=type(exc).__name__,
    )


class SQLiteIdempotencyStore(IdempotencyStore):
    """The store of one machine: a SQLite file shared by its gunicorn workers."""

    def __init__(self, path, ttl: float, lease: float, clock=time.time):
        self.db = SQLiteFile(Path(path), SCHEMA)
        self.ttl = ttl
        #: how long a claim may run before it counts as abandoned (its worker died)
        self.lease = lease
        self.clock = clock
        self._claims = 0

    def claim(self, scope, key, block, request) -> Claim:
        now = self.clock()
        with self.db.transaction() as conn:
            self._claims += 1
            if self._claims % 500 == 1:
                conn.execute("DELETE FROM idempotency WHERE expires_at < ?", (now,))
            row = conn.execute(
                "SELECT * FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
            if row is not None and row["expires_at"] < now:
                row = None
            abandoned = (
                row is not None
                and row["state"] == "running"
                and row["started_at"] + self.lease < now
            )
            if row is None or abandoned:
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency (scope, key, block, request, state, "
                    "started_at, expires_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                    (scope, key, block, request, now, now + self.ttl),
                )
                return Claim("new")
            if row["block"] != block or row["request"] != request:
                return Claim("reused")
            if row["state"] == "running":
                return Claim("in_use")
            return Claim("replay", row["status"], json.loads(row["headers"]), bytes(row["body"]))

    def complete(self, scope, key, status, headers, body) -> None:
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ? "
                    "WHERE scope = ? AND key = ?",
                    (status, json.dumps(headers), body, scope, key),
                )
        except sqlite3.Error as exc:
            lost("complete", exc)

    def release(self, scope, key) -> None:
        try:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM idempotency WHERE scope = ? AND key = ?", (scope, key))
        except sqlite3.Error as exc:
            lost("release", exc)

    def check(self) -> str | None:
        """None when the file takes a write, else what failed. The probe row is written and
        deleted in one transaction (its empty scope is no fingerprint), so pages really are
        written: an empty transaction would pass on a read-only or full disk."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency (scope, key, block, request, state, "
                    "started_at, expires_at) VALUES ('', 'readyz', '', '', 'probe', 0, 0)"
                )
                conn.execute("DELETE FROM idempotency WHERE scope = '' AND key = 'readyz'")
        except sqlite3.Error as exc:
            conn = self.db.conn
            if conn.in_transaction:  # a failed COMMIT leaves it open; later calls need it closed
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            kind = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
            return f"the SQLite file {self.db.path} cannot be written ({kind})"
        return None
