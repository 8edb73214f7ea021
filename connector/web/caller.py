"""Whether the HTTP client of the request being served is still there: the engine asks
while it waits for a file to fetch, so that a caller who hung up stops holding a worker."""

from __future__ import annotations

import select
import socket

from connector.poll import POLL


def caller_gone(environ):
    """A check that says whether the HTTP client of this request has closed its connection
    (a poll that does not wait, and a peek), or None where the server gives no socket."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return None
    raw = getattr(sock, "_sock", sock)  # connector.server.worker.Connection wraps gevent's socket

    def gone() -> bool:
        try:
            fd = raw.fileno()
        except OSError:
            return True
        if fd < 0:
            return True
        poller = POLL()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        events = poller.poll(0)
        if not events:
            return False
        if events[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
            return True
        try:  # readable: a closed connection reads as nothing; pipelined bytes stay put
            return raw.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    return gone
