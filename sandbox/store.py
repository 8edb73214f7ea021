"""The sandbox's state: one SQLite file that every worker process shares.

Each thread of each process opens its own connection (SQLite connections must
not cross threads or a fork); WAL mode lets readers and a writer work at once;
IMMEDIATE transactions make check-then-write atomic across workers. The sandbox
keeps its own handle on the file: it imports nothing of the connector, which it
stands in for.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, app TEXT NOT NULL, expires_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY, app TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    max_clients INTEGER NOT NULL, max_messages INTEGER NOT NULL, active INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL,
    description TEXT, sub_topics TEXT NOT NULL, pub_topics TEXT NOT NULL,
    secure_cert_enabled INTEGER NOT NULL, provisioning TEXT NOT NULL, auth_token TEXT NOT NULL,
    certificate TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS clients_by_tenant ON clients (tenant_id);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, client_id TEXT NOT NULL,
    message_id INTEGER NOT NULL, type TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL,
    qos INTEGER NOT NULL, duplicate INTEGER NOT NULL, save INTEGER NOT NULL,
    status TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_client ON messages (tenant_id, client_id, created_at);
CREATE TABLE IF NOT EXISTS files (
    tenant_id TEXT NOT NULL, client_id TEXT NOT NULL, filename TEXT NOT NULL,
    content BLOB NOT NULL, content_type TEXT NOT NULL, size INTEGER NOT NULL,
    created_at INTEGER NOT NULL, PRIMARY KEY (tenant_id, client_id, filename));
CREATE TABLE IF NOT EXISTS configs (
    tenant_id TEXT NOT NULL, client_id TEXT NOT NULL, config TEXT NOT NULL,
    updated_at INTEGER NOT NULL, PRIMARY KEY (tenant_id, client_id));
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, client_id TEXT NOT NULL,
    ts INTEGER NOT NULL, level TEXT NOT NULL, creator TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS logs_by_client ON logs (tenant_id, client_id, ts);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, client_id TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, messages INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS network_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, client_id TEXT NOT NULL,
    ts INTEGER NOT NULL, mac_id TEXT, imei TEXT, msisdn TEXT, iccid TEXT,
    network TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT, method TEXT NOT NULL, path TEXT NOT NULL,
    fault TEXT NOT NULL, status INTEGER, retry_after INTEGER, delay REAL,
    remaining INTEGER NOT NULL);
"""

#: What belongs to one client (and so goes with it, or with its tenant).
CLIENT_TABLES = ("messages", "files", "configs", "logs", "sessions", "network_logs")
TABLES = (
    "tokens",
    "tenants",
    "clients",
    "messages",
    "files",
    "configs",
    "logs",
    "sessions",
    "network_logs",
    "faults",
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Store:
    """The sandbox's state, in the SQLite file at ``path``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with sqlite3.connect(self.path) as setup:
            setup.execute("PRAGMA journal_mode=WAL")
            setup.executescript(SCHEMA)
        setup.close()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: the parent's is not ours)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            local.conn.row_factory = sqlite3.Row
            local.conn.executescript(
                "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"
            )
            local.pid = os.getpid()
        return local.conn

    @contextmanager
    def transaction(self):
        """A write transaction, IMMEDIATE: the write lock is taken before the first read."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def one(self, sql, *params):
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql, *params):
        return self.conn.execute(sql, params).fetchall()

    def reset(self) -> None:
        with self.transaction() as conn:
            for table in TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)


def loads(text):
    return json.loads(text) if text else None
