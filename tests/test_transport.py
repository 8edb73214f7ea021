"""The http.client keep-alive pool: reuse, stale connections, streaming, multipart."""

import io
import socket
import threading
import time

import pytest

from connector.transport import HTTPTransport, MultipartBody


class RawServer:
    """A bare HTTP/1.1 server on 127.0.0.1 that counts connections and can hang up
    after each answer without saying so (as a server's idle timeout does)."""

    def __init__(self, hang_up=False, body=b'{"ok": true}', raw=None):
        self.hang_up, self.body, self.raw = hang_up, body, raw
        self.connections = 0
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            self.exchange(conn)
        except ConnectionError:
            pass  # the client gave up on a connection: nothing to do
        finally:
            conn.close()

    def exchange(self, conn):
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(data) < length:
                data += conn.recv(65536)
            self.requests.append((head.split(b"\r\n")[0], data[:length]))
            data = data[length:]
            if self.raw is not None:
                conn.sendall(self.raw)
                if self.hang_up:
                    return
                continue
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                + self.body
            )
            if self.hang_up:
                time.sleep(0.05)
                return

    def close(self):
        self.sock.close()


@pytest.fixture
def server():
    made = []

    def make(**kw):
        made.append(RawServer(**kw))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_connections_are_kept_alive_and_reused(server):
    up = server()
    transport = HTTPTransport(up.url, 1, 1)
    for _ in range(5):
        assert transport.send("GET", "/a", {}, None).content == b'{"ok": true}'
    assert up.connections == 1 and len(up.requests) == 5


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_connection_the_server_hung_up_is_not_reused(server, method):
    up = server(hang_up=True)
    transport = HTTPTransport(up.url, 1, 1)
    for _ in range(3):
        reply = transport.send(method, "/a", {"Content-Length": "2"}, b"{}")
        assert reply.status_code == 200
        time.sleep(0.1)  # the server has hung up by now
    assert up.connections == 3 and len(up.requests) == 3


def test_a_stream_read_to_the_end_returns_its_connection(server):
    up = server(body=b"x" * 300_000)
    transport = HTTPTransport(up.url, 1, 1)
    reply = transport.send("GET", "/f", {}, None, stream=True)
    assert sum(len(c) for c in reply.iter_content(65536)) == 300_000
    transport.send("GET", "/f", {}, None)
    assert up.connections == 1


def test_a_stream_abandoned_halfway_closes_its_connection(server):
    up = server(body=b"x" * 300_000)
    transport = HTTPTransport(up.url, 1, 1)
    reply = transport.send("GET", "/f", {}, None, stream=True)
    chunks = reply.iter_content(1000)
    next(chunks)
    chunks.close()
    reply.close()
    transport.send("GET", "/f", {}, None)
    assert up.connections == 2


@pytest.mark.parametrize("source", [b"\x00\x01binary" * 1000, io.BytesIO(b"file bytes" * 5000)])
def test_multipart_body_length_is_what_it_sends(source):
    body = MultipartBody("uploadedfile", 'a "quoted" name.bin', "application/octet-stream", source)
    sent = b"".join(body)
    assert len(sent) == len(body)
    assert b'name="uploadedfile"; filename="a \\"quoted\\" name.bin"' in sent
    assert sent.endswith(f"--{body.boundary}--\r\n".encode())


def test_the_host_header_and_a_base_path_are_kept(server):
    up = server()
    transport = HTTPTransport(up.url + "/prefix/", 1, 1)
    transport.send("GET", "/api/v1/tenants?x=1", {}, None)
    assert up.requests[0][0] == b"GET /prefix/api/v1/tenants?x=1 HTTP/1.1"


CHUNKED = (
    b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nLocation: /m/1\r\n"
    b"Set-Thing: a\r\nset-thing: b\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


def test_headers_chunked_bodies_and_interim_answers(server):
    up = server(raw=CHUNKED)
    transport = HTTPTransport(up.url, 1, 1)
    reply = transport.send("POST", "/m", {"Content-Length": "2"}, b"{}")
    assert (reply.status_code, reply.content) == (201, b"hello world")
    assert reply.headers["location"] == "/m/1"
    transport.send("POST", "/m", {"Content-Length": "2"}, b"{}")
    assert up.connections == 1  # a chunked answer read to its end keeps the connection


def test_an_answer_without_length_ends_with_its_connection(server):
    up = server(raw=b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", hang_up=True)
    transport = HTTPTransport(up.url, 1, 1)
    assert transport.send("GET", "/", {}, None).content == b"all of it"
    transport.send("GET", "/", {}, None)
    assert up.connections == 2
