"""The one HTTP server the unit tests start, on 127.0.0.1, for what only a real socket shows.

Answers that are only "this request got this answer" are mocked with responses (the
``mocked`` fixtures in tests/conftest.py); a ``Loopback`` is for the rest: an answer slower
than the read timeout, a connection dropped or a body cut off, connections counted as they
are kept alive or hung up, a proxy that sees absolute request lines, the URL uploadFile
fetches, and whole processes (gunicorn) that need an upstream on a port.

Answers are registered the way responses registers them (``server.get(path, json=...)``), and
``server.calls[0].request`` is what arrived. A request nothing was registered for answers
599 (or ``unmatched`` when given) and fails ``check()``. Nothing listens before ``start()``
(or ``with Loopback() as server:``).

Socket behaviour, per answer:

- ``delay=s``: answer after ``s`` seconds; ``hold=event``: answer once the event is set;
- ``fault="drop"``: close the connection without answering;
- ``fault="cut"``: send the head and the first bytes of the body, then close;
- ``raw=b"..."``: send these bytes as the whole answer (status line included);
- ``hang_up=True``: close the connection right after answering, without saying so;
- ``drip=s``: send the body one byte every ``s`` seconds (``drip_head=True``: the status
  line and headers too), until it is sent or the client hangs up;
- ``endless=n``: a chunked body that repeats ``body`` until ``n`` bytes have gone out or the
  client hangs up (an answer that, to the client, never ends).
"""

from __future__ import annotations

import json as jsonlib
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class CaseInsensitive(dict):
    def __init__(self, pairs):
        super().__init__((k.lower(), v) for k, v in pairs)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)

    def __contains__(self, key):
        return super().__contains__(key.lower())


@dataclass
class Sent:
    method: str
    url: str
    headers: CaseInsensitive
    body: bytes
    #: the request line as it arrived ("GET /a HTTP/1.1"; a proxy sees the absolute URL)
    line: str = ""


@dataclass
class Recorded:
    request: Sent


@dataclass
class Rule:
    method: str
    path: str
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    fault: str | None = None
    delay: float = 0.0
    #: answer only once this is set (a test holds a call in flight as long as it needs)
    hold: threading.Event | None = None
    #: how many requests this answer serves (None: all of them)
    times: int | None = None
    raw: bytes | None = None
    hang_up: bool = False
    drip: float = 0.0
    drip_head: bool = False
    endless: int = 0
    used: int = 0


class Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections under a burst of calls.
    request_queue_size = 512
    daemon_threads = True


def closed_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (a port just freed): connection
    refused, nothing sent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


class Loopback:
    """A recording HTTP/1.1 server on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, unmatched: tuple[int, dict, bytes] | None = None, port: int = 0):
        #: the port to listen on (0: any free one); a given one lets a test heal an outage
        #: at a URL the connector already calls (closed_url)
        self.port = port
        self.unmatched_answer = unmatched or (
            599,
            {"Content-Type": "application/json"},
            b'{"message": "no answer registered"}',
        )
        self.rules: list[Rule] = []
        self.calls: list[Recorded] = []
        #: the raw paths asked for, in order (answered or not)
        self.hits: list[str] = []
        self.unmatched: list[str] = []
        #: TCP connections accepted so far, and closed so far (by either side)
        self.connections = 0
        self.closed = 0
        self.lock = threading.Condition()
        self.server: Server | None = None
        self.url = ""
        self.where = ""

    # -- life --------------------------------------------------------------------------

    def start(self) -> Loopback:
        self.server = Server(("127.0.0.1", self.port), self.handler())
        self.where = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.where}"
        # serve_forever looks for shutdown() between waits: short waits, quick teardowns.
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> Loopback:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        loopback = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # The head and the body go out as two writes: without this, the second
                # waits for the client's delayed ACK (about 40 ms an answer).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with loopback.lock:
                    loopback.connections += 1

            def finish(self):
                super().finish()
                with loopback.lock:
                    loopback.closed += 1
                    loopback.lock.notify_all()

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except ConnectionError:
                    self.close_connection = True

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                loopback.record(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

            def log_message(self, *args):
                pass

        return Handler

    # -- registering -------------------------------------------------------------------

    def add(
        self,
        method,
        url,
        status=200,
        json=None,
        body=b"",
        headers=None,
        content_type=None,
        fault=None,
        delay=0.0,
        times=None,
        hold=None,
        raw=None,
        hang_up=False,
        drip=0.0,
        drip_head=False,
        endless=0,
    ):
        """Register an answer for ``method`` and a path ("*": any path); a full URL counts
        by its path."""
        path = urlsplit(url).path if url.startswith("http") else url
        headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        if content_type:
            headers["Content-Type"] = content_type
        rule = Rule(
            method, path, status, body, headers, fault, delay, hold, times, raw, hang_up,
            drip, drip_head, endless,
        )  # fmt: skip
        with self.lock:
            self.rules.append(rule)

    def get(self, url, **kw):
        self.add("GET", url, **kw)

    def post(self, url, **kw):
        self.add("POST", url, **kw)

    def put(self, url, **kw):
        self.add("PUT", url, **kw)

    def delete(self, url, **kw):
        self.add("DELETE", url, **kw)

    def wait_for_calls(self, count: int, timeout: float = 10.0) -> None:
        """Return once ``count`` requests have arrived (a held one counts on arrival)."""
        with self.lock:
            if not self.lock.wait_for(lambda: len(self.calls) >= count, timeout):
                raise AssertionError(f"{count} upstream requests expected, {len(self.calls)} came")

    def wait_for_closed(self, count: int, timeout: float = 10.0) -> None:
        """Return once ``count`` connections have ended on the server's side (a hang-up has
        then reached the client: on loopback the kernel delivers it at once)."""
        with self.lock:
            if not self.lock.wait_for(lambda: self.closed >= count, timeout):
                raise AssertionError(f"{count} connections to end expected, {self.closed} did")

    def reset(self):
        with self.lock:
            self.rules, self.calls, self.hits, self.unmatched = [], [], [], []

    def check(self):
        """Fail on requests nothing was registered for, and on registrations never used."""
        assert not self.unmatched, f"unexpected upstream requests: {self.unmatched}"
        unused = [f"{r.method} {r.path}" for r in self.rules if not r.used]
        assert not unused, f"registered but never requested: {unused}"

    # -- serving -----------------------------------------------------------------------

    def record(self, handler, body):
        raw_path = handler.path
        url = raw_path if raw_path.startswith("http") else self.url + raw_path
        sent = Sent(
            handler.command,
            url,
            CaseInsensitive(handler.headers.items()),
            body,
            handler.requestline,
        )
        path = urlsplit(raw_path).path
        with self.lock:
            self.calls.append(Recorded(sent))
            self.hits.append(raw_path)
            self.lock.notify_all()
            rule = next(
                (
                    r
                    for r in self.rules
                    if r.method == handler.command
                    and r.path in (path, "*")
                    and (r.times is None or r.used < r.times)
                ),
                None,
            )
            if rule is None:
                self.unmatched.append(f"{handler.command} {raw_path}")
            else:
                rule.used += 1
        if rule is None:
            self.answer(handler, *self.unmatched_answer)
            return
        if rule.fault == "drop":
            self.hang_up(handler)
            return
        if rule.hold is not None:
            rule.hold.wait(timeout=30)
        if rule.delay:
            time.sleep(rule.delay)
        if rule.fault == "cut":
            handler.send_response(rule.status)
            handler.send_header("Content-Length", str(len(rule.body) + 100))
            handler.end_headers()
            handler.wfile.write(rule.body[:10])
            handler.wfile.flush()
            self.hang_up(handler)
            return
        if rule.raw is not None:
            handler.wfile.write(rule.raw)
            handler.wfile.flush()
        elif rule.drip:
            self.drip(handler, rule)
        elif rule.endless:
            self.endless(handler, rule)
        else:
            self.answer(handler, rule.status, rule.headers, rule.body)
        if rule.hang_up:
            self.hang_up(handler)

    @staticmethod
    def head(status, headers) -> bytes:
        lines = [f"HTTP/1.1 {status} Answer"] + [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def drip(self, handler, rule):
        head = self.head(rule.status, {**rule.headers, "Content-Length": len(rule.body)})
        if not rule.drip_head:
            handler.wfile.write(head)
            head = b""
        try:
            for byte in head + rule.body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(rule.drip)
        except OSError:  # the client let go
            handler.close_connection = True

    def endless(self, handler, rule):
        handler.wfile.write(
            self.head(rule.status, {**rule.headers, "Transfer-Encoding": "chunked"})
        )
        chunk = b"%x\r\n%s\r\n" % (len(rule.body), rule.body)
        sent = 0
        try:
            while sent < rule.endless:
                handler.wfile.write(chunk)
                sent += len(rule.body)
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:  # the client let go
            handler.close_connection = True

    @staticmethod
    def hang_up(handler):
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def answer(handler, status, headers, body):
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@contextmanager
def serve(routes):
    """Serve ``routes`` (GET path -> (status, headers, body)) on a free loopback port; yields
    ("127.0.0.1:port", the paths asked for). Any other path answers 404."""
    with Loopback(unmatched=(404, {}, b"not here")) as server:
        for path, (status, headers, body) in routes.items():
            server.get(path, status=status, headers=headers, body=body)
        yield server.where, server.hits
