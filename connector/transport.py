"""How bytes reach InstaMsg: a keep-alive connection pool on http.client, or the
sandbox's WSGI app in this process. Both answer with the same Reply.

Why not requests or urllib3 here: on the hot path they cost 2 to 6 times what a
pooled http.client exchange costs (bench/README figures); the connector needs
none of their features (redirects, cookies, proxies, retries are ours to decide).
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
from collections import deque
from urllib.parse import unquote_to_bytes, urlsplit

CHUNK = 64 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class Headers(dict):
    """Response headers with case-insensitive ``get``; names are stored lower-case."""

    def get(self, name, default=None):
        return super().get(name.lower(), default)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def __contains__(self, name):
        return super().__contains__(name.lower())


class Reply:
    """An upstream answer: status, headers, and the body read whole or streamed."""

    def __init__(self, status, headers, content=None, raw=None, release=None):
        self.status_code = status
        self.headers = headers
        self._content = content
        self._raw = raw
        self._release = release

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self.iter_content(CHUNK))
        return self._content

    def iter_content(self, size=CHUNK):
        if self._content is not None:
            for start in range(0, len(self._content), size):
                yield self._content[start : start + size]
            return
        try:
            while chunk := self._raw.read(size):
                yield chunk
        finally:
            self.close()

    def close(self):
        if self._release is not None:
            release, self._release = self._release, None
            release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MultipartBody:
    """A multipart/form-data body with one file part, streamed, with a known length."""

    boundary = "instamsgconnector7e3fb0d9a1c24a5f"

    def __init__(self, field: str, filename: str, content_type: str, source):
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        self.head = (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{quoted}"\r\nContent-Type: {content_type}\r\n\r\n'
        ).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.source = source
        if isinstance(source, (bytes, bytearray)):
            size = len(source)
        else:
            source.seek(0, io.SEEK_END)
            size = source.tell()
            source.seek(0)
        self.length = len(self.head) + size + len(self.tail)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"

    def __len__(self):
        return self.length

    def __iter__(self):
        yield self.head
        if isinstance(self.source, (bytes, bytearray)):
            yield bytes(self.source)
        else:
            while chunk := self.source.read(CHUNK):
                yield chunk
        yield self.tail


def _dropped(conn) -> bool:
    """True if an idle keep-alive connection was closed by the server (or has junk).

    select() with no wait: readable means EOF or unexpected bytes. (A non-blocking
    MSG_PEEK recv was tried instead: same throughput, but S1's p99 went from 67 ms to
    450 ms under gevent, so select stays.)"""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _TimeoutsMixin:
    """Connect under the connect timeout, then read under the read timeout."""

    read_timeout: float

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(self.read_timeout)


class _HTTP(_TimeoutsMixin, http.client.HTTPConnection):
    pass


class _HTTPS(_TimeoutsMixin, http.client.HTTPSConnection):
    pass


class HTTPTransport:
    """A LIFO pool of keep-alive connections to one origin.

    deque.append and deque.pop are atomic, so threads and greenlets share it
    without a lock. A connection goes back to the pool only after its answer was
    read to the end and the server did not ask to close.
    """

    def __init__(self, base_url: str, connect_timeout: float, read_timeout: float, maxsize=256):
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.host_header = parts.netloc
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.maxsize = maxsize
        self._idle: deque = deque()
        self._tls = ssl.create_default_context() if self.https else None

    def _new(self):
        if self.https:
            conn = _HTTPS(self.host, self.port, timeout=self.connect_timeout, context=self._tls)
        else:
            conn = _HTTP(self.host, self.port, timeout=self.connect_timeout)
        conn.read_timeout = self.read_timeout
        return conn

    def _checkout(self):
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return self._new(), False
            if not _dropped(conn):
                return conn, True
            conn.close()

    def _checkin(self, conn, response) -> None:
        if response.will_close or not response.isclosed() or len(self._idle) >= self.maxsize:
            conn.close()
        else:
            self._idle.append(conn)

    def send(self, method, target, headers, body, stream=False) -> Reply:
        headers = {"Host": self.host_header, **headers}
        conn, reused = self._checkout()
        try:
            response = self._exchange(conn, method, self.prefix + target, headers, body)
        except (ConnectionError, http.client.RemoteDisconnected):
            conn.close()
            # A reused connection that the server had closed: one fresh try, where a
            # repeat is harmless (the body can be sent again and the method is idempotent).
            if not reused or method not in IDEMPOTENT or not isinstance(body, (bytes, type(None))):
                raise
            conn = self._new()
            response = self._exchange(conn, method, self.prefix + target, headers, body)
        except BaseException:
            conn.close()
            raise
        reply_headers = Headers((k.lower(), v) for k, v in response.getheaders())
        if stream:
            return Reply(
                response.status,
                reply_headers,
                raw=response,
                release=lambda: self._checkin(conn, response),
            )
        try:
            content = response.read()
        except BaseException:
            conn.close()
            raise
        self._checkin(conn, response)
        return Reply(response.status, reply_headers, content=content)

    @staticmethod
    def _exchange(conn, method, target, headers, body):
        if body is not None and not isinstance(body, (bytes, bytearray)):
            headers = {**headers, "Content-Length": str(len(body))}
            body = iter(body)
        conn.request(method, target, body=body, headers=headers)
        return conn.getresponse()

    def close(self):
        while self._idle:
            self._idle.pop().close()


class WSGITransport:
    """Hands each call to a WSGI app in this process (the sandbox): no socket at all.

    The app can signal a dropped connection or a timeout by raising the sandbox's
    Dropped or TimedOut; they become the errors a socket would have raised.
    """

    def __init__(self, app, read_timeout: float, host="sandbox.instamsg.invalid"):
        self.app = app
        self.read_timeout = read_timeout
        self.host = host

    def send(self, method, target, headers, body, stream=False) -> Reply:
        from sandbox.http import Dropped, TimedOut

        path, _, query = target.partition("?")
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = b"".join(body)
        body = body or b""
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": self.host,
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
            "sandbox.read_timeout": self.read_timeout,
        }
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH":
                environ["HTTP_" + key] = value
        captured = []

        def start_response(status, response_headers, exc_info=None):
            captured[:] = [status, response_headers]

        try:
            chunks = self.app(environ, start_response)
            try:
                content = b"".join(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
        except Dropped:
            raise ConnectionResetError("the sandbox dropped the connection") from None
        except TimedOut:
            raise TimeoutError("the sandbox was slower than the read timeout") from None
        status, response_headers = captured
        reply_headers = Headers((k.lower(), v) for k, v in response_headers)
        return Reply(int(status.split(" ", 1)[0]), reply_headers, content=content)

    def close(self):
        pass
