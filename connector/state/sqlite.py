"""One SQLite file shared by every worker process and thread.

SQLite connections must not cross a fork. WAL lets readers and a writer work at once;
IMMEDIATE transactions make check-then-write atomic across workers. Used by the sandbox's
state and by the connector's idempotency store.

Two ways to hold connections:

- the default (the sandbox): each thread (or greenlet) of each process opens its own;
- ``one_connection=True`` (the idempotency store): one connection per process, taken under
  a lock for each statement or transaction. A call in flight then costs no file descriptor
  of its own (each connection holds two: the database and its WAL), and the file is checked
  before each use: when it was deleted or replaced, the connection is opened again and the
  schema made anew, instead of answering "no such table" until a restart.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path


class SQLiteFile:
    """A thin, thread- and fork-safe handle on one SQLite file with ``schema``."""

    def __init__(self, path: str | os.PathLike, schema: str, one_connection: bool = False):
        self.path = Path(path)
        self.schema = schema
        self.one_connection = one_connection
        self._local = threading.local()
        # one_connection: the process's connection, the pid that opened it, the file it opened
        self._shared: sqlite3.Connection | None = None
        self._shared_pid: int | None = None
        self._shared_file: tuple[int, int] | None = None
        self._guard = threading.RLock()
        self._create()

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(self.schema)
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=10, isolation_level=None, check_same_thread=not self.one_connection
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def _process_connection(self) -> sqlite3.Connection:
        """The one connection of this process (one_connection), opened again when the
        process forked or the file on disk is no longer the one it opened. Hold _guard."""
        identity = self._identity()
        if (
            self._shared is not None
            and self._shared_pid == os.getpid()
            and identity is not None
            and identity == self._shared_file
        ):
            return self._shared
        if self._shared is not None and self._shared_pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self._shared.close()
        self._shared = None
        if identity is None:
            self._create()  # deleted while running (or never made): make it again
        conn = self._connect()
        conn.executescript(self.schema)  # replaced by an empty file: the tables again
        self._shared, self._shared_pid, self._shared_file = conn, os.getpid(), self._identity()
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        if self.one_connection:
            with self._guard:
                return self._process_connection()
        # A connection inherited through fork() belongs to the parent: open our own.
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = self._connect()
            local.pid = os.getpid()
        return local.conn

    @contextmanager
    def _using(self):
        if not self.one_connection:
            yield self.conn
            return
        with self._guard:
            yield self._process_connection()

    @contextmanager
    def transaction(self):
        """A write transaction; IMMEDIATE so that check-then-write is atomic across workers.
        A transaction that fails (a failed COMMIT too) is rolled back, so the connection is
        usable by the next call."""
        with self._using() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def one(self, sql, *params):
        with self._using() as conn:
            return conn.execute(sql, params).fetchone()

    def all(self, sql, *params):
        with self._using() as conn:
            return conn.execute(sql, params).fetchall()
