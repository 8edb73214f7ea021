"""The gunicorn worker the connector runs on: gevent's, with deadlines for slow clients.

gunicorn's gevent worker waits as long as a client likes for a request body, and a request head
that never completes holds its connection slot until the keep-alive timer runs out. A few
thousand half-sent requests then fill every slot and nobody else is answered. This worker gives
each connection a deadline for the phase it is in, and makes room when a worker fills up:

- **head**: the request line and headers must all arrive within ``CLIENT_HEADER_TIMEOUT`` of the
  connection's accept (or of the first byte of a later request on a kept-alive connection);
- **body**: while the application reads the body, no read may wait more than
  ``CLIENT_BODY_TIMEOUT``;
- **idle**: a kept-alive connection waits up to gunicorn's ``keepalive`` for its next request
  (not at all once the worker is stopping: SIGTERM closes idle connections at once).

A client that misses a head or body deadline gets a 408 (best effort: gunicorn's own error
writer, which never blocks) and its connection is closed; an idle one is closed quietly.

When a worker holds more than 90% of ``worker_connections``, each new connection closes one that
is blocked on a read from its client, the one that has waited longest: an idle keep-alive
connection first, else a request head, else a request body (the same 408 rules). A connection
whose request is being worked on (the application running, or writing its answer) is never
closed to make room; when all of them are, gunicorn stops accepting at ``worker_connections``
as before.

The deadlines live in ``recv()`` of a thin wrapper around the client socket, the one call
through which gunicorn reads a request, and are plain ``gevent.Timeout`` timers. After an
answer, what the application left unread of the body is read under the body's deadline; bytes
of a next request already buffered behind it (pipelined) put the connection in its head phase
at once, so half a head sent in the same packet as a whole request waits no longer than any
other head.

``admit`` (gunicorn's ``pre_request`` hook, for every worker class) holds a request to HTTP/1.1
where gunicorn's parser is lenient, and makes a body that cannot be framed the client's fault.

The same wrapper writes an answer's head and the first part of its body with one ``sendall``:
gunicorn writes them one after the other, which cost a system call and a packet more per answer.
And a request during which the event loop never turned (its client and InstaMsg had every byte
ready) gives the other connections a turn before the next one: without it, a client that
pipelines requests keeps the worker to itself (bench/README.md has the figures).
"""

from __future__ import annotations

import contextlib
import socket
import time

import gevent
from gunicorn import util
from gunicorn.http.errors import InvalidHeader, NoMoreData, ParseException
from gunicorn.workers.ggevent import GeventWorker

# The client timeouts are read in the base: the MCP HTTP server (connector/mcp/http.py) keeps
# them too.
from connector.config import client_timeouts
from connector.errors import InvalidRequest

#: the share of worker_connections past which waiting connections are closed to make room
ROOM_AT = 0.9
#: a body part up to this size goes out in the same write as the head before it
COALESCE_MAX = 64 * 1024
#: the shortest timer: "after the event loop's next poll"
TURN_S = 1e-6
#: what the application left of a request body is read (and dropped) this much at a time
DRAIN_STEP = 64 * 1024
#: the version the connector answers in (RFC 9110 section 2.5: a request of a later HTTP/1.x
#: is answered as the highest minor version the server speaks)
HTTP_1_1 = (1, 1)
HTTP_2 = (2, 0)

UNFRAMED = (
    "The request body could not be read: its chunked framing is malformed (a chunk size, a "
    "chunk extension, a line end or a trailer) or it ended before its last chunk. Send "
    "well-formed chunks or the body with a Content-Length; this connection is closed."
)

IDLE, HEAD, BODY = "idle", "head", "body"
TOO_SLOW = {
    IDLE: "idle keep-alive connection",
    HEAD: "the request head took too long",
    BODY: "the request body stalled",
}


def admit(worker, req) -> None:
    """gunicorn's ``pre_request`` hook (gunicorn.conf.py): what gunicorn's parser lets through
    and HTTP/1.1 does not.

    - A request of HTTP/1.2 to 1.9 is served, and answered, as HTTP/1.1 (gunicorn would echo the
      client's version in the status line).
    - An HTTP/1.1 request must carry exactly one Host (RFC 9112 section 3.2): anything else is
      gunicorn's own 400, before the application runs, and the connection closes.
    - A body whose framing gunicorn cannot read (a malformed chunk or trailer, or one cut off)
      is the client's fault: reading it raises InvalidRequest, which the application answers
      400 like any other bad request, with ``Connection: close``. gunicorn marks such a body
      failed and reads no further request from the connection, whatever follows the bad bytes.
    """
    if HTTP_1_1 < req.version < HTTP_2:
        req.version = HTTP_1_1
    if HTTP_1_1 <= req.version < HTTP_2:
        hosts = sum(1 for name, _ in req.headers if name == "HOST")
        if hosts != 1:
            raise InvalidHeader("Host: an HTTP/1.1 request carries exactly one")
    body = getattr(req, "body", None)
    if body is not None:
        body.reader = FramedReader(body.reader, req)


class FramedReader:
    """gunicorn's body reader (chunked or by length), with its framing errors told as the
    client's: ``InvalidRequest`` rather than an exception the application would take for a bug.
    """

    def __init__(self, reader, req):
        self._reader = reader
        self._req = req

    def read(self, size):
        try:
            return self._reader.read(size)
        except (ParseException, NoMoreData):
            self._req.force_close()  # the answer says Connection: close
            raise InvalidRequest(UNFRAMED) from None


class ClientDropped(BaseException):
    """Ends a connection whose client was too slow, or that was closed to make room.

    A BaseException, like ``gevent.Timeout``: raised inside the application's body read, it
    must reach the worker rather than be answered as an application error by an
    ``except Exception``."""

    def __init__(self, why: str, answer: bool):
        super().__init__(why)
        self.why = why
        #: whether a 408 may still be written (nothing of an answer has gone out yet)
        self.answer = answer


class Connection:
    """A client socket as gunicorn sees it. Every other attribute is the socket's own."""

    def __init__(self, sock, worker: DeadlineWorker):
        self._sock = sock
        self._worker = worker
        self.phase = HEAD
        #: when the current phase began (the head's deadline counts from here)
        self.since = time.monotonic()
        #: an answer to the current request has started going out
        self.answered = False
        #: why it was closed from outside (to make room, the worker stopping): the next read
        #: ends the connection
        self.evicted: str | None = None
        #: hold the next write (an answer's head) to send it with the write after it
        self.hold = False
        self.held: bytes | None = None

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def recv(self, size: int) -> bytes:
        worker, phase = self._worker, self.phase
        if phase == HEAD:
            wait = self.since + worker.header_timeout - time.monotonic()
        elif phase == BODY:
            wait = worker.body_timeout
        else:
            # A stopping worker waits for no next request: its calls in flight finish.
            wait = worker.cfg.keepalive if worker.alive else 0
        if self.evicted or wait <= 0:
            raise self.dropped()
        waiting = worker.waiting[phase]
        waiting[self] = None
        try:
            with gevent.Timeout(wait, False):
                return self._read(size)
            raise self.dropped()  # reached only when the timeout ended the read
        finally:
            waiting.pop(self, None)

    def _read(self, size: int) -> bytes:
        try:
            data = self._sock.recv(size)
        except OSError:
            if self.evicted:  # gevent ends a read with EBADF when evict() shuts it down
                raise self.dropped() from None
            raise
        if self.evicted:  # evicted while the read was already on its way back
            raise self.dropped()
        if data and self.phase == IDLE:
            self._worker.moved(self, HEAD)
        return data

    def dropped(self) -> ClientDropped:
        why = self.evicted or TOO_SLOW[self.phase]
        return ClientDropped(why, answer=self.phase != IDLE and not self.answered)

    def sendall(self, data, *args):
        self.answered = True
        if self.hold:  # gunicorn writes a head whole, then the body: hold it for one write
            self.hold, self.held = False, bytes(data)
            return None
        held = self.held
        if held is not None:
            self.held = None
            if len(data) <= COALESCE_MAX:
                return self._sock.sendall(held + data, *args)
            self._sock.sendall(held)
        return self._sock.sendall(data, *args)

    def release(self) -> None:
        """Send a held head now: before any other way of writing goes out."""
        held, self.held = self.held, None
        if held is not None:
            self._sock.sendall(held)

    def flush(self) -> None:
        """The request ends: send what is held, and hold nothing more."""
        self.hold = False
        self.release()

    def send(self, data, *args):  # gunicorn's "100 Continue" goes out this way, before the head
        self.release()
        return self._sock.send(data, *args)

    def sendfile(self, file, offset=0, count=None):  # a file answer's body, after its head
        self.release()
        return self._sock.sendfile(file, offset, count)

    def shutdown(self, how):  # an answer that failed half-way: what was written goes first
        with contextlib.suppress(OSError):
            self.flush()
        return self._sock.shutdown(how)

    def evict(self, why: str = "closed to make room") -> None:
        """End this connection from another greenlet: its pending read wakes and raises."""
        self.evicted = why
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)


class DeadlineWorker(GeventWorker):
    """gunicorn's gevent worker, with client deadlines and room made for new connections."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout, self.body_timeout = client_timeouts()
        self.room_at = max(1, int(self.worker_connections * ROOM_AT))
        self.open: set[Connection] = set()
        # The connections blocked on a read from their client, by phase, longest-waiting first
        # (dicts keep insertion order). They are the ones that may be closed to make room.
        self.waiting = {IDLE: {}, HEAD: {}, BODY: {}}

    def handle(self, listener, client, addr):
        conn = Connection(client, self)
        self.open.add(conn)
        self.make_room()
        try:
            super().handle(listener, conn, addr)
        finally:
            self.open.discard(conn)

    def handle_request(self, listener_name, req, sock, addr):
        self.moved(sock, BODY)
        sock.hold = True
        loop = gevent.get_hub().loop
        turn = loop.iteration  # the event loop's turn count: it moves on whenever we wait
        try:
            super().handle_request(listener_name, req, sock, addr)
        finally:
            with contextlib.suppress(OSError):  # a broken connection ends at its next read
                sock.flush()  # an answer with a head and no body (HEAD, 204, 304)
        self.finish_body(req)
        # Bytes already buffered are the next request's (pipelined behind this one): its head
        # deadline runs from now. Empty lines are not (some clients end a body with one more
        # CRLF, which gunicorn skips): such a connection is idle.
        pipelined = req.unreader.buf.getvalue().lstrip(b"\r\n")
        self.moved(sock, HEAD if pipelined else IDLE)
        if loop.iteration == turn:
            # This request never waited (its client and InstaMsg had every byte ready), so no
            # other connection has had a turn since it began: give them one before the next
            # request on this connection. A timer, not sleep(0): it resumes after the loop
            # has polled for the others' input. (gevent's libuv loop counts no iterations:
            # there every request takes the turn, which costs a little and is as fair.)
            try:
                gevent.sleep(TURN_S)
            except gevent.GreenletExit:  # the worker is stopping: this connection ends here
                raise StopIteration from None

    def finish_body(self, req) -> None:
        """Read what the application left of the request body, still in the body phase and
        under its deadline (gunicorn would read it before the next request, under the
        keep-alive wait). A body that cannot be framed ends the connection."""
        try:
            while req.body.read(DRAIN_STEP):
                pass
        except (InvalidRequest, ParseException, OSError):
            raise StopIteration from None

    def timeout_ctx(self):
        # The keep-alive wait is the idle phase's deadline in Connection.recv.
        return contextlib.nullcontext()

    def handle_error(self, req, client, addr, exc):
        if not isinstance(exc, ClientDropped):
            return super().handle_error(req, client, addr, exc)
        self.log.info("Closing a connection from %s: %s", (addr or ("",))[0], exc.why)
        if exc.answer:
            with contextlib.suppress(Exception):
                util.write_error(
                    client, 408, "Request Timeout", "The request did not arrive in time."
                )

    def handle_exit(self, sig, frame):
        """SIGTERM (a deploy, ``docker stop``): the calls in flight finish within the graceful
        timeout, but a connection only waiting for its next request has nothing to finish, so
        it is closed now. Else one idle keep-alive connection (a load balancer keeps dozens)
        held every stop for the whole graceful timeout, and then its worker was killed."""
        super().handle_exit(sig, frame)
        gevent.spawn(self.close_idle)

    def close_idle(self) -> None:
        for conn in list(self.waiting[IDLE]):
            self.waiting[IDLE].pop(conn, None)
            conn.evict("idle, and the worker is stopping")

    def moved(self, conn: Connection, phase: str) -> None:
        conn.phase, conn.since, conn.answered = phase, time.monotonic(), False

    def make_room(self) -> None:
        """Past the mark, close the connection that has waited longest on its client: idle
        ones first, then request heads, then request bodies."""
        while len(self.open) > self.room_at:
            victim = next((c for w in self.waiting.values() for c in w), None)
            if victim is None:
                return  # every connection is being served: gunicorn's own limit applies
            for waiting in self.waiting.values():
                waiting.pop(victim, None)
            self.open.discard(victim)
            victim.evict()
