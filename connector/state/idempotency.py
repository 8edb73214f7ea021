"""Idempotency-Key: a repeated block call answers what the first one answered, and a key
never runs a call twice.

As Stripe defines it: the first completed answer (status and body, errors from InstaMsg
included) is kept under the key, scoped to the caller's credentials; the same key with the
same arguments replays it without calling InstaMsg; with other arguments or another block it
is refused (IDEMPOTENCY_KEY_REUSED); while the first call still runs, IDEMPOTENCY_KEY_IN_USE.
Only blocks with side effects keep answers: a read (GET) ignores the key.

A key's life: ``claim`` makes it ``running`` for a lease that covers the whole possible life
of the call (``Lifetimes``, from the same settings the call runs with). Then exactly one of:

- ``complete``: InstaMsg answered definitely (a success, or a refusal that ran nothing
  upstream beyond refusing); the answer is kept and replayed.
- ``release``: the call certainly sent nothing (refused before sending, a failed token
  fetch, an upstream 429, a connect error): the key is free for a retry.
- ``settle_unknown``: the call may have reached InstaMsg and its outcome is not known (a
  timeout after sending, the worker stopped mid-call, an answer that could not be kept).
  The key answers OUTCOME_UNKNOWN from then on; it is never run again.

A ``running`` claim whose lease passed (its process was killed) is not run again either:
the next claim finds it ``abandoned``, settles it as unknown in the same step, and every
later call with the key gets OUTCOME_UNKNOWN. The call itself never starts sending past its
``send_by`` moment (``SendWatch``), so a call still running when its lease ends has either
finished sending or never started.

Store faults raise ``IdempotencyUnavailable`` (503, nothing sent when the claim failed);
nothing is lost silently.

``IdempotencyStore`` is the interface; ``SQLiteIdempotencyStore`` is the one shared by all
gunicorn workers of a machine, surviving restarts;
``connector.state.redis_store.RedisIdempotencyStore`` is the one shared by every instance when
REDIS_URL is set. ``connector.state.stores.open_idempotency_store`` picks between them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from connector.errors import IdempotencyUnavailable, OutcomeUnknown
from connector.server import logs
from connector.state.sqlite import SQLiteFile

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
MAX_KEY = 255
#: The largest answer a key keeps whole (bytes). Only blocks with side effects keep answers,
#: and theirs are small; a larger one keeps its status and a note (see ``bounded_answer``).
MAX_KEPT_BYTES = 64 * 1024
#: What the lease adds to the call's own worst case: the store write after the answer, and
#: scheduling. (A write later than that finds its claim settled as unknown, and its caller is
#: answered OUTCOME_UNKNOWN too: a small margin costs consistency of nothing.)
MARGIN = 5.0
#: How long one token lock is waited for, beyond a fetch's own time (connector.state.redis_store).
LOCK_SLACK = 5.0

UNAVAILABLE = (
    "The Idempotency-Key store is not answering, so this call was not sent to InstaMsg. "
    "Send it again with the same Idempotency-Key in a few seconds; calls without an "
    "Idempotency-Key keep working."
)
#: The Retry-After of IDEMPOTENCY_UNAVAILABLE: long enough for a Redis restart or failover.
RETRY_AFTER = 5.0


def outcome_unknown(replayed: bool = False) -> OutcomeUnknown:
    """The answer a key keeps when its call may have reached InstaMsg and how it ended is
    not known: the same for the first caller and every retry (``replayed``: a retry's)."""
    return OutcomeUnknown(
        "The call with this Idempotency-Key may or may not have reached InstaMsg: it was "
        "interrupted (a timeout after sending, InstaMsg failing with a 5xx after it may have "
        "acted, the connector stopping, or its answer could not be kept), so the connector "
        "cannot say whether it took effect and will not send it "
        "again under this key. Check in InstaMsg (getMessages, getFiles, getClients...) "
        "whether it happened; if it did not and you still want it, send it again with a NEW "
        "Idempotency-Key.",
        headers=[("Idempotent-Replayed", "true")] if replayed else (),
    )


def unavailable(fault: str | None = None) -> IdempotencyUnavailable:
    return IdempotencyUnavailable(UNAVAILABLE, retry_after_s=RETRY_AFTER, fault=fault)


@dataclass(frozen=True)
class Lifetimes:
    """How long each step of one block call can take at most, from the settings it runs
    with (seconds), and the lease that covers them all.

    - one upstream attempt: its connect and read timeouts;
    - one upstream send: its retries and waits end within ``deadline``, and the last
      attempt may start just before it (connector.upstream.retry.RetryPolicy);
    - a managed-token fetch: one upstream send, after waiting for another instance's fetch
      under the Redis token lock at most one attempt and a slack;
    - uploadFile's fileUrl fetch: its overall deadline and one connect (connector.upstream.fetch).

    A 401 on the block's call renews the token and sends once more: that second send still
    has to start by ``send_by``, or it is not sent at all (and the key is freed). The lease is
    therefore safe whatever the call does: no send starts later than ``send_by``, and every
    send ends within ``upstream``.
    """

    attempt: float
    upstream: float
    token: float
    file: float
    lease: float

    @classmethod
    def of(cls, settings) -> Lifetimes:
        attempt = settings.connect_timeout + settings.read_timeout
        upstream = settings.deadline + attempt
        token = upstream + attempt + LOCK_SLACK
        file = settings.deadline + settings.connect_timeout
        lease = file + token + upstream + MARGIN
        return cls(attempt, upstream, token, file, lease)

    @property
    def send_by(self) -> float:
        """Seconds after its claim past which a call no longer starts sending: a send that
        starts then ends before the lease does, with the margin to keep its answer."""
        return self.lease - MARGIN - self.upstream


class SendWatch:
    """Whether one keyed call may have reached InstaMsg, told by the upstream client
    (``connector.upstream.client.Upstream.send_once``) around each attempt of the block's own call:
    ``before`` just before bytes go out, ``after`` once the attempt ended, saying whether
    InstaMsg may have run it. An attempt that never ended (the worker stopped mid-call)
    counts as sent. ``before`` refuses to start past ``send_by`` (a monotonic time)."""

    __slots__ = ("send_by", "reached", "_open")

    def __init__(self, send_by: float | None = None):
        self.send_by = send_by
        self.reached = False
        self._open = False

    def before(self) -> None:
        if self.send_by is not None and time.monotonic() > self.send_by:
            from connector.errors import UpstreamTimeout

            raise UpstreamTimeout(
                "This call spent its time getting ready (a token, a file) and was not sent to "
                "InstaMsg: it is too late to send it under its Idempotency-Key's lease. Send "
                "it again with the same Idempotency-Key.",
                nothing_sent=True,
            )
        self._open = True

    def after(self, reached: bool) -> None:
        self._open = False
        if reached:
            self.reached = True

    @property
    def may_have_sent(self) -> bool:
        return self.reached or self._open


@dataclass
class Claim:
    """What the store says about a key: ``new`` (run it; ``owner`` names this claim),
    ``replay`` (with the kept answer), ``reused`` (other arguments), ``in_use`` (the first
    call still runs) or ``abandoned`` (its call may have run and its outcome is unknown:
    answer OUTCOME_UNKNOWN)."""

    kind: str
    status: int | None = None
    headers: list | None = None
    body: bytes | None = None
    owner: str | None = None


def new_owner() -> str:
    return os.urandom(12).hex()


def request_digest(block: str, args: dict, context_key: str, rapid: bool, who: str = "") -> str:
    """A digest of what was asked: the block, its arguments as sent, and the answer's form;
    and ``who`` asked, where the key's scope alone does not say (an anonymous caller's
    InstaMsg identity: connector.engine.idempotency_keys.principal)."""

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

    asked = [block, args, context_key, rapid, who] if who else [block, args, context_key, rapid]
    text = json.dumps(asked, sort_keys=True, default=plain, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class IdempotencyStore:
    """The interface; see SQLiteIdempotencyStore. Every method raises
    ``IdempotencyUnavailable`` when the store cannot be read or written."""

    #: seconds a claim stays ``running`` before it counts as abandoned
    lease: float

    def claim(self, scope, key, block, request) -> Claim:
        """Claim ``key`` for a call, or say what it holds (see ``Claim``)."""
        raise NotImplementedError

    def complete(self, scope, key, owner, status, headers, body) -> bool:
        """Keep a claimed call's finished answer for replays. False when the claim is no
        longer ``owner``'s (its lease ran out and it was settled as unknown)."""
        raise NotImplementedError

    def settle_unknown(self, scope, key, owner) -> None:
        """The claimed call may have reached InstaMsg and its outcome is unknown: the key
        answers OUTCOME_UNKNOWN from now on."""
        raise NotImplementedError

    def release(self, scope, key, owner) -> None:
        """Free a claimed key: its call certainly sent nothing."""
        raise NotImplementedError

    def check(self) -> str | None:
        """Readiness: None when the store takes a write, else a short text naming what failed."""
        raise NotImplementedError

    def tie(self, token: str, principal: str, ttl: float) -> None:
        """Remember for ``ttl`` seconds that the access token named ``token`` (a fingerprint,
        never the token) was issued to ``principal``: an anonymous caller's keys follow its
        InstaMsg app across renewed tokens (connector.engine.idempotency_keys)."""
        raise NotImplementedError

    def owner_of(self, token: str) -> str | None:
        """The principal ``tie`` named for ``token``, or None (unknown, or expired)."""
        raise NotImplementedError


def bounded_answer(status: int, headers: list, body: bytes) -> tuple[int, list, bytes]:
    """What a key keeps of an answer: all of it up to MAX_KEPT_BYTES; past that, its status
    and an envelope saying the call ran once and its answer was too large to keep."""
    if len(body) <= MAX_KEPT_BYTES:
        return status, headers, body
    note = {
        "callback": "success" if status < 400 else "error",
        "contextWrites": {},
        "warnings": [
            f"This call ran once; its answer ({len(body)} bytes) was larger than the "
            f"{MAX_KEPT_BYTES} bytes an Idempotency-Key keeps, so a replay answers only its "
            "status. Read the result with the matching get block."
        ],
    }
    kept = [[k, v] for k, v in headers if k.lower() not in ("content-length", "content-type")]
    kept.append(["Content-Type", "application/json"])
    return status, kept, json.dumps(note).encode("utf-8")


def store_fault(store: str, step: str, exc: BaseException) -> IdempotencyUnavailable:
    """Log a store fault (its kind, never its text) and make the error that answers it."""
    kind = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    logs.event("idempotency store unavailable", logging.WARNING, store=store, step=step, fault=kind)
    return unavailable(fault=kind)  # the kind: what /readyz names


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
        status, headers, body = bounded_answer(status, headers, body)
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
