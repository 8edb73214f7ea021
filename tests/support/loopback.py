"""A tiny HTTP server on 127.0.0.1 for tests that need a real socket."""

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.fake_upstream import FakeUpstream


@contextmanager
def serve(routes):
    """Serve ``routes``: path -> (status, headers, body) on a free loopback port."""

    class Handler(BaseHTTPRequestHandler):
        hits: list = []

        def do_GET(self):
            Handler.hits.append(self.path)
            status, headers, body = routes.get(self.path, (404, {}, b"not here"))
            FakeUpstream.answer(self, status, headers, body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", Handler.hits
    finally:
        server.shutdown()
        server.server_close()
