"""Sandbox mode as a requests transport adapter.

``SandboxAdapter`` is mounted on the upstream session in place of the HTTP adapter: each
prepared request goes to the sandbox's Flask app in this process (werkzeug builds the
WSGI environ and runs the app), and its answer comes back as an ordinary
``requests.Response``. The connector cannot tell the difference, and no socket is opened.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict, HTTPResponse
from werkzeug.test import EnvironBuilder, run_wsgi_app

#: What the in-process sandbox is called: never resolvable, so nothing can leak to a network.
SANDBOX_URL = "http://sandbox.instamsg.invalid"


class AppBody(io.RawIOBase):
    """A WSGI app's answer as a file: its chunks pulled only as a reader asks, so a reader
    that stops early (the client's cap) never makes the app produce the rest."""

    def __init__(self, chunks):
        self._chunks = chunks
        self._next = iter(chunks)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._left:
            chunk = next(self._next, None)
            if chunk is None:
                return 0
            self._left = chunk
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size

    def close(self) -> None:
        if not self.closed and hasattr(self._chunks, "close"):
            self._chunks.close()
        super().close()


class SandboxAdapter(BaseAdapter):
    """Answers requests with a WSGI app in this process (the InstaMsg sandbox).

    The app signals a dropped connection or a slow answer by raising the sandbox's
    Dropped or TimedOut; they become the requests exceptions a socket would have caused.
    """

    def __init__(self, app):
        super().__init__()
        self.app = app

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        from sandbox.http import Dropped, TimedOut

        body = request.body
        if hasattr(body, "read"):  # a streamed body (uploadFile's multipart encoder)
            body = body.read()
        elif isinstance(body, str):
            body = body.encode("utf-8")
        parts = urlsplit(request.url)
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        builder = EnvironBuilder(
            path=parts.path,
            query_string=parts.query,
            method=request.method,
            headers=headers,
            data=body or b"",
            base_url=f"{parts.scheme}://{parts.netloc}",
            environ_overrides={"sandbox.read_timeout": read_timeout},
        )
        try:
            # The app signals a fault when it is called; its body is pulled only as it is read.
            chunks, status, answer_headers = run_wsgi_app(self.app, builder.get_environ())
        except Dropped:
            raise requests.ConnectionError(
                "the sandbox dropped the connection", request=request
            ) from None
        except TimedOut:
            raise requests.ReadTimeout(
                "the sandbox was slower than the read timeout", request=request
            ) from None
        finally:
            builder.close()
        code, _, reason = status.partition(" ")
        # HTTPHeaderDict keeps a header that repeats (two Set-Cookie, two Warning) whole.
        raw_headers = HTTPHeaderDict()
        for name, value in answer_headers.to_wsgi_list():
            raw_headers.add(name, value)
        raw = HTTPResponse(
            body=AppBody(chunks),
            headers=raw_headers,
            status=int(code),
            reason=reason,
            preload_content=False,
            decode_content=False,
        )
        response = requests.Response()
        response.status_code = int(code)
        response.reason = reason
        response.headers = CaseInsensitiveDict(raw_headers)
        response.raw = raw
        response.url = request.url
        response.request = request
        response.connection = self
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        # Not read here: the client reads every answer through its cap (bounds.read_within),
        # as it does an answer off a socket.
        return response

    def close(self):
        pass


def sandbox_session(settings):
    """A session whose calls the sandbox app answers inside this process, and the sandbox's
    data file (the one module of the connector that knows the sandbox)."""
    from connector.upstream.transport import upstream_session
    from sandbox.app import create_sandbox_app
    from sandbox.store import Store

    store = Store(Path(settings.data_dir) / "sandbox.sqlite3")
    app = create_sandbox_app(
        store, apps=settings.sandbox_apps, token_ttl=settings.sandbox_token_ttl
    )
    session = upstream_session(replace(settings, api_url=SANDBOX_URL))
    session.mount(SANDBOX_URL + "/", SandboxAdapter(app))
    return session, store.path
