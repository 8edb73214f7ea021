"""One SQLite file shared by every worker process and thread.

Each thread (or greenlet) of each process opens its own connection: SQLite
connections must not cross threads or a fork. WAL lets readers and a writer
work at once; IMMEDIATE transactions make check-then-write atomic across workers.
Used by the idempotency store.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path


class SQLiteFile:
    """A thin, thread- and fork-safe handle on one SQLite file with ``schema``."""

    def __init__(self, path: str | os.PathLike, schema: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(schema)
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        # A connection inherited through fork() belongs to the parent: open our own.
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = self._connect()
            local.pid = os.getpid()
        return local.conn

    @contextmanager
    def transaction(self):
        """A write transaction; IMMEDIATE so that check-then-write is atomic across workers."""
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
