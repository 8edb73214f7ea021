"""A recording InstaMsg stand-in on 127.0.0.1, for tests of the real HTTP transport.

Tests register answers by method and path (``upstream.get(url, json=...)``), then
read back exactly what the connector sent (``upstream.calls[0].request``). Faults
are real socket behaviour: ``fault="slow"`` answers after ``delay`` seconds,
``"drop"`` closes the connection without an answer, ``"cut"`` closes it halfway
through the body.
"""

from __future__ import annotations

import json as jsonlib
import threading
import time
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
    used: int = 0


class Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections under a burst of calls.
    request_queue_size = 512


class FakeUpstream:
    def __init__(self):
        self.rules: list[Rule] = []
        self.calls: list[Recorded] = []
        self.unmatched: list[str] = []
        self.lock = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except ConnectionError:
                    self.close_connection = True

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.record(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, *args):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # -- registering ---------------------------------------------------------------

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
    ):
        path = urlsplit(url).path if url.startswith("http") else url
        headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        if content_type:
            headers["Content-Type"] = content_type
        with self.lock:
            self.rules.append(Rule(method, path, status, body, headers, fault, delay, hold, times))

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

    def reset(self):
        with self.lock:
            self.rules, self.calls, self.unmatched = [], [], []

    # -- serving -------------------------------------------------------------------

    def record(self, handler, body):
        raw_path = handler.path
        sent = Sent(
            handler.command, self.url + raw_path, CaseInsensitive(handler.headers.items()), body
        )
        path = urlsplit(raw_path).path
        with self.lock:
            self.calls.append(Recorded(sent))
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
            self.answer(
                handler, 599, {"Content-Type": "application/json"}, b'{"message": "no mock"}'
            )
            return
        if rule.fault == "drop":
            handler.close_connection = True
            handler.connection.shutdown(2)
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
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        self.answer(handler, rule.status, rule.headers, rule.body)

    @staticmethod
    def answer(handler, status, headers, body):
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def check(self):
        """Fail on requests nothing was registered for, and on registrations never used."""
        assert not self.unmatched, f"unexpected upstream requests: {self.unmatched}"
        unused = [f"{r.method} {r.path}" for r in self.rules if not r.used]
        assert not unused, f"registered but never requested: {unused}"
