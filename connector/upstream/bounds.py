"""What one exchange with InstaMsg (or a file URL) may cost, stated once for every reader.

- **Bytes.** An answer is read CHUNK decoded bytes at a time and refused as soon as it passes
  its cap (``read_within``): urllib3 decodes gzip or deflate no further than each read asks, so
  a small compressed answer that would inflate to gigabytes costs at most one chunk past the
  cap. Block answers are capped at ANSWER_LIMIT; downloadFile and file URLs at their settings.
- **Time.** A read timeout bounds each read, not an exchange: a sender dripping a byte a
  second never trips it. A ``Watchdog`` ends an exchange at its deadline (or when its caller
  has gone) by shutting down the sockets it uses, so a read blocked on them returns at once.
  One thread per process watches every exchange in flight (a greenlet under gevent).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

from connector.errors import ConnectorError

MIB = 1024 * 1024
#: The most a block's answer may carry, decoded. InstaMsg answers a page of records (a list of
#: messages, clients or files) in kilobytes; a few MiB is far beyond any of them and far below
#: what would strain a worker. Not a setting: no real answer comes near it.
ANSWER_LIMIT = 8 * MIB
#: How much is read, and decoded, at a time.
CHUNK = 64 * 1024
#: The smallest piece an answer may average: a body is refused once it has come in more than
#: its cap's worth of pieces this small. Each piece costs a few microseconds in urllib3, so a
#: chunked body of one-byte chunks would otherwise cost a worker seconds of CPU within the cap
#: (about 1.4 s a million), without a pause for the watchdog.
MIN_PIECE = 64
#: How often the watchdog looks at the clock and the callers (seconds).
WATCH_EVERY = 0.25

#: the watchdog of the exchange running in this context (each greenlet or thread its own)
_CURRENT: ContextVar[Watchdog | None] = ContextVar("upstream_watchdog", default=None)


def read_within(
    response, limit: int, too_large: Callable[[], ConnectorError], dog: Watchdog | None = None
) -> bytes:
    """A requests response's body, decoded, refused with ``too_large()`` as soon as it is
    known to pass ``limit`` bytes (from its Content-Length, or while reading) or to come in
    more than ``limit // MIN_PIECE`` pieces: the rest is neither read nor decoded. Past
    ``dog``'s deadline the reading stops and the watchdog is tripped, even where no read
    waits (and so lets the watchdog's thread run): its owner checks ``dog.why``. The caller
    closes the response, and so its connection."""
    declared = response.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large()
    chunks, size, pieces = [], 0, limit // MIN_PIECE
    for chunk in response.iter_content(CHUNK):
        size += len(chunk)
        pieces -= 1
        if size > limit or pieces < 0:
            raise too_large()
        chunks.append(chunk)
        if dog is not None and time.monotonic() > dog.deadline:
            dog.trip("slow")
            break
    return b"".join(chunks)


def watched(sock) -> None:
    """``sock`` carries the exchange running in this context: its watchdog may shut it.
    Called by the connections of the upstream pool and of file fetches (transport.py,
    fetch.py) when they start to carry a request."""
    dog = _CURRENT.get()
    if dog is not None:
        dog.add(sock)


def _shut(sock) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """Ends an exchange at ``deadline`` (monotonic) or when ``gone()`` says its caller left,
    by shutting down every socket it used (``watched``). ``why`` says which ("slow" or
    "gone"), or is None; the exchange's owner checks it whatever the read returned, since a
    body read until the connection closes ends cleanly, and short, when it is shut."""

    def __init__(self, deadline: float, gone: Callable[[], bool] | None = None):
        self.deadline = deadline
        self.gone = gone
        self.sockets: list = []
        self.why: str | None = None

    def __enter__(self) -> Watchdog:
        self._token = _CURRENT.set(self)
        WATCHER.watch(self)
        return self

    def __exit__(self, *exc) -> None:
        WATCHER.forget(self)
        _CURRENT.reset(self._token)

    def left(self) -> float:
        """Seconds until the deadline (negative past it)."""
        return self.deadline - time.monotonic()

    def add(self, sock) -> None:
        self.sockets.append(sock)
        if self.why is not None:
            _shut(sock)

    def due(self, now: float) -> str | None:
        if now > self.deadline:
            return "slow"
        if self.gone is not None and self.gone():
            return "gone"
        return None

    def trip(self, why: str) -> None:
        self.why = why
        for sock in list(self.sockets):
            _shut(sock)


class Watcher:
    """The process's one thread that trips the watchdogs in flight. Started by the first
    watchdog of each process (gunicorn forks workers after the app is built)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._dogs: set[Watchdog] = set()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None

    def watch(self, dog: Watchdog) -> None:
        with self._lock:
            self._dogs.add(dog)
            if self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="upstream-watchdog", daemon=True
                )
                self._thread.start()

    def forget(self, dog: Watchdog) -> None:
        # Under the lock: once forgotten, a watchdog is never tripped, so the sockets its
        # exchange handed back to the pool are left alone. (A socket goes back to the pool as
        # its answer's last byte is read, just before this: under gevent no other call runs
        # in between; with threads, a deadline falling in that instant could shut a socket
        # another call has just taken, which that call sees as a broken connection.)
        with self._lock:
            self._dogs.discard(dog)

    def _run(self) -> None:
        while True:
            time.sleep(WATCH_EVERY)
            now = time.monotonic()
            with self._lock:
                for dog in list(self._dogs):
                    try:
                        why = dog.due(now)
                    except Exception:  # noqa: BLE001  (a failed check stops no other call)
                        why = "slow" if now > dog.deadline else None
                    if why is not None:
                        dog.trip(why)
                        self._dogs.discard(dog)


WATCHER = Watcher()
