"""A requests transport that hands calls to a WSGI app in this process.

With ``INSTAMSG_SANDBOX=1`` the upstream session mounts this adapter on the
sandbox's base URL, so every block runs through the same client, error table
and result shaping as against InstaMsg, with no socket at all.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import EnvironBuilder, run_wsgi_app

from sandbox.app import Dropped, TimedOut


class IterStream(io.RawIOBase):
    """A readable stream over a WSGI app's body iterator."""

    def __init__(self, chunks):
        self._iter = iter(chunks)
        self._chunks = chunks
        self._buffer = b""

    def readable(self):
        return True

    def readinto(self, target):
        while not self._buffer:
            try:
                self._buffer = next(self._iter)
            except StopIteration:
                return 0
            except Dropped:
                raise requests.exceptions.ConnectionError(
                    "sandbox dropped the connection"
                ) from None
        size = min(len(target), len(self._buffer))
        target[:size], self._buffer = self._buffer[:size], self._buffer[size:]
        return size

    def close(self):
        if hasattr(self._chunks, "close"):
            self._chunks.close()
        super().close()


class WSGIAdapter(BaseAdapter):
    def __init__(self, app):
        super().__init__()
        self.app = app

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        parts = urlsplit(request.url)
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        builder = EnvironBuilder(
            path=parts.path,
            query_string=parts.query,
            method=request.method,
            headers=list(request.headers.items()),
            input_stream=io.BytesIO(body or b""),
            content_length=len(body or b""),
        )
        environ = builder.get_environ()
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        if read_timeout is not None:
            environ["sandbox.read_timeout"] = float(read_timeout)
        try:
            chunks, status, headers = run_wsgi_app(self.app, environ, buffered=False)
        except Dropped:
            raise requests.exceptions.ConnectionError("sandbox dropped the connection") from None
        except TimedOut:
            raise requests.exceptions.ReadTimeout("sandbox slower than the timeout") from None

        response = requests.Response()
        response.status_code = int(status.split(" ", 1)[0])
        response.reason = status.split(" ", 1)[1] if " " in status else ""
        response.headers = CaseInsensitiveDict(headers.to_wsgi_list())
        response.raw = io.BufferedReader(IterStream(chunks), buffer_size=64 * 1024)
        response.url = request.url
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        if not stream:
            response.content  # noqa: B018  (read the body now, as a socket transport does)
        return response

    def close(self):
        pass
