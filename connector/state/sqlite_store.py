"""The idempotency store of one machine: a SQLite file in the data directory, shared by its
gunicorn workers through one connection per process, surviving restarts."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from connector.state.sqlite import SQLiteFile
from connector.state.store import Claim, IdempotencyStore, new_owner, store_fault

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, block TEXT NOT NULL, request TEXT NOT NULL,
    state TEXT NOT NULL, status INTEGER, headers TEXT, body BLOB,
    started_at REAL NOT NULL, expires_at REAL NOT NULL, owner TEXT,
    PRIMARY KEY (scope, key));
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
CREATE TABLE IF NOT EXISTS token_owner (
    token TEXT PRIMARY KEY, principal TEXT NOT NULL, expires_at REAL NOT NULL);
"""

#: what a SQLite store fault looks like: the file's errors, and the directory's
FAULTS = (sqlite3.Error, OSError)


class SQLiteIdempotencyStore(IdempotencyStore):
    """The store of one machine: a SQLite file shared by its gunicorn workers, through one
    connection per process (``SQLiteFile(one_connection=True)``)."""

    def __init__(self, path, ttl: float, lease: float, clock=time.time):
        try:
            self.db = SQLiteFile(Path(path), SCHEMA, one_connection=True)
            columns = {row["name"] for row in self.db.all("PRAGMA table_info(idempotency)")}
            if "owner" not in columns:  # a file from before claims had owners
                with self.db.transaction() as conn:
                    conn.execute("ALTER TABLE idempotency ADD COLUMN owner TEXT")
        except FAULTS as exc:
            raise store_fault("sqlite", "open", exc) from None
        self.ttl = ttl
        #: how long a claim may run before it counts as abandoned (its worker died)
        self.lease = lease
        self.clock = clock
        self._claims = 0

    def _answer(self, row, block, request) -> Claim | None:
        """What an existing, unexpired row answers without a write; None: it needs one
        (absent, or a running claim past its lease)."""
        if row is None:
            return None
        if row["block"] != block or row["request"] != request:
            return Claim("reused")
        if row["state"] == "done":
            return Claim("replay", row["status"], json.loads(row["headers"]), bytes(row["body"]))
        if row["state"] == "unknown":
            return Claim("abandoned")
        if row["started_at"] + self.lease >= self.clock():
            return Claim("in_use")
        return None

    def claim(self, scope, key, block, request) -> Claim:
        select = "SELECT * FROM idempotency WHERE scope = ? AND key = ? AND expires_at >= ?"
        try:
            # A key that holds an answer is answered with a read: replays work on a disk that
            # has gone read-only or full.
            row = self.db.one(select, scope, key, self.clock())
            found = self._answer(row, block, request)
            if found is not None:
                return found
            with self.db.transaction() as conn:
                now = self.clock()
                self._claims += 1
                if self._claims % 500 == 1:
                    conn.execute("DELETE FROM idempotency WHERE expires_at < ?", (now,))
                row = conn.execute(select, (scope, key, now)).fetchone()
                found = self._answer(row, block, request)
                if found is not None:
                    return found
                if row is not None:  # running past its lease: never run again
                    conn.execute(
                        "UPDATE idempotency SET state = 'unknown', owner = NULL "
                        "WHERE scope = ? AND key = ?",
                        (scope, key),
                    )
                    return Claim("abandoned")
                owner = new_owner()
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency (scope, key, block, request, state, "
                    "started_at, expires_at, owner) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
                    (scope, key, block, request, now, now + self.ttl, owner),
                )
                return Claim("new", owner=owner)
        except FAULTS as exc:
            raise store_fault("sqlite", "claim", exc) from None

    def _write(self, step, sql, params) -> int:
        try:
            with self.db.transaction() as conn:
                return conn.execute(sql, params).rowcount
        except FAULTS as exc:
            raise store_fault("sqlite", step, exc) from None

    def complete(self, scope, key, owner, status, headers, body) -> bool:
        return bool(
            self._write(
                "complete",
                "UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ?, "
                "owner = NULL WHERE scope = ? AND key = ? AND state = 'running' AND owner = ?",
                (status, json.dumps(headers), body, scope, key, owner),
            )
        )

    def settle_unknown(self, scope, key, owner) -> None:
        self._write(
            "settle",
            "UPDATE idempotency SET state = 'unknown', owner = NULL "
            "WHERE scope = ? AND key = ? AND state = 'running' AND owner = ?",
            (scope, key, owner),
        )

    def release(self, scope, key, owner) -> None:
        self._write(
            "release",
            "DELETE FROM idempotency WHERE scope = ? AND key = ? AND state = 'running' "
            "AND owner = ?",
            (scope, key, owner),
        )

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
        except FAULTS as exc:
            kind = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
            return f"the SQLite file {self.db.path} cannot be written ({kind})"
        return None

    def tie(self, token: str, principal: str, ttl: float) -> None:
        now = self.clock()
        self._write(
            "tie",
            "INSERT OR REPLACE INTO token_owner (token, principal, expires_at) VALUES (?, ?, ?)",
            (token, principal, now + ttl),
        )
        if self._claims % 500 == 1:  # swept as often as expired keys are
            self._write("tie", "DELETE FROM token_owner WHERE expires_at < ?", (now,))

    def untie(self, token: str) -> None:
        self._write("untie", "DELETE FROM token_owner WHERE token = ?", (token,))

    def owner_of(self, token: str) -> str | None:
        try:
            row = self.db.one(
                "SELECT principal FROM token_owner WHERE token = ? AND expires_at >= ?",
                token,
                self.clock(),
            )
        except FAULTS as exc:
            raise store_fault("sqlite", "owner", exc) from None
        return None if row is None else row["principal"]
