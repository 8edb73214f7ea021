"""The requests session to InstaMsg over real loopback sockets: pooling, connections the
server hung up, chunked and interim answers, repeated headers, proxies, and odd statuses;
and the sandbox adapter that stands in for the socket in sandbox mode."""

import socket
import threading
import time

import pytest
import requests
from flask import Flask, Response
from gevent import monkey

from app import create_app
from connector.config import Settings
from connector.errors import ApiError
from connector.upstream import client as upstream_module
from connector.upstream.client import Upstream, UpstreamRequest, _HTTPConnection, upstream_session
from connector.upstream.sandbox import SANDBOX_URL, SandboxAdapter
from tests.support.upstream import TOKEN


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


def upstream_for(url, **settings) -> Upstream:
    settings = Settings(api_url=url, **settings)
    return Upstream(upstream_session(settings), url, 1, 1)


def get(path="/a", stream=False):
    return UpstreamRequest("GET", path, stream=stream, block="test")


def test_connections_are_kept_alive_and_reused(server):
    up = server()
    upstream = upstream_for(up.url)
    for _ in range(5):
        assert upstream.send(get()).content == b'{"ok": true}'
    assert up.connections == 1 and len(up.requests) == 5


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_connection_the_server_hung_up_is_not_reused(server, method):
    up = server(hang_up=True)
    upstream = upstream_for(up.url)
    for _ in range(3):
        reply = upstream.send(UpstreamRequest(method, "/a", json={}))
        assert reply.status_code == 200
        time.sleep(0.1)  # the server has hung up by now
    assert up.connections == 3 and len(up.requests) == 3


@pytest.mark.parametrize(
    "then, expected", [(None, True), ("send", False), ("close", False)], ids=str
)
def test_the_reuse_check_tells_an_idle_connection_from_a_talkative_or_closed_one(then, expected):
    # urllib3 asks before reusing a pooled connection; the connector answers with the
    # system's poll (connector/upstream/client.py): readable means closed, or data nobody asked for.
    conn = _HTTPConnection("127.0.0.1", 9)
    assert not conn.is_connected  # no socket yet
    ours, theirs = socket.socketpair()
    conn.sock = ours
    if then == "send":
        theirs.sendall(b"HTTP/1.1 200 OK\r\n")
    elif then == "close":
        theirs.close()
    try:
        assert conn.is_connected is expected
    finally:
        ours.close()
        theirs.close()


def test_the_reuse_check_polls_with_the_system_not_with_gevent():
    assert upstream_module._POLL is monkey.get_original("select", "poll")


@pytest.mark.parametrize("proxy", [None, "http://127.0.0.1:9"])
def test_pools_direct_or_through_a_proxy_use_the_checked_connections(proxy, monkeypatch):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
    session = upstream_session(Settings(api_url="https://api.instamsg.io"))
    prepared = requests.Request("GET", "https://api.instamsg.io/api/v1/tenants").prepare()
    adapter = session.get_adapter(prepared.url)
    pool = adapter.get_connection_with_tls_context(prepared, True, session.proxies)
    assert pool.ConnectionCls is upstream_module._HTTPSConnection  # nothing is connected
    assert bool(session.proxies) is bool(proxy)


def test_a_redirect_from_instamsg_is_an_error_that_names_it(server):
    up = server(raw=b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
    upstream = upstream_for(up.url)
    for call in (get(), UpstreamRequest("POST", "/a", json={"x": 1}, block="test")):
        with pytest.raises(ApiError) as raised:
            upstream.send(call)
        assert raised.value.upstream["status"] == 302
        assert "unexpected redirect" in str(raised.value)
    assert [line for line, _ in up.requests] == [b"GET /a HTTP/1.1", b"POST /a HTTP/1.1"]


def test_the_pool_is_found_once_per_origin_and_again_after_the_adapter_closes(server):
    up = server()
    upstream = upstream_for(up.url)
    adapter = upstream.session.get_adapter(up.url)
    upstream.send(get())
    upstream.send(get("/b?x=1"))
    (pool,) = adapter._pools.values()
    assert up.connections == 1
    adapter.close()  # as Session.close does
    assert adapter._pools == {}
    assert upstream.send(get()).status_code == 200
    (renewed,) = adapter._pools.values()
    assert renewed is not pool and up.connections == 2 and len(up.requests) == 3


def test_a_stream_read_to_the_end_returns_its_connection(server):
    up = server(body=b"x" * 300_000)
    upstream = upstream_for(up.url)
    reply = upstream.send(get("/f", stream=True))
    assert sum(len(c) for c in reply.iter_content(65536)) == 300_000
    upstream.send(get("/f"))
    assert up.connections == 1


def test_a_stream_abandoned_halfway_closes_its_connection(server):
    up = server(body=b"x" * 300_000)
    upstream = upstream_for(up.url)
    reply = upstream.send(get("/f", stream=True))
    next(reply.iter_content(1000))
    reply.close()
    upstream.send(get("/f"))
    assert up.connections == 2


def test_a_base_path_is_kept(server):
    up = server()
    upstream_for(up.url + "/prefix").send(get("/api/v1/tenants"))
    assert up.requests[0][0] == b"GET /prefix/api/v1/tenants HTTP/1.1"


CHUNKED = (
    b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nLocation: /m/1\r\n"
    b"Warning: 199 - first\r\nwarning: 199 - second\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


def test_chunked_bodies_interim_answers_and_repeated_headers(server):
    up = server(raw=CHUNKED)
    upstream = upstream_for(up.url)
    reply = upstream.send(UpstreamRequest("POST", "/m", json={}))
    assert (reply.status_code, reply.content) == (201, b"hello world")
    assert reply.headers["location"] == "/m/1"
    # A header that repeats keeps every value (the old pool kept only the last one).
    assert reply.raw.headers.getlist("Warning") == ["199 - first", "199 - second"]
    assert reply.headers["Warning"] == "199 - first, 199 - second"
    upstream.send(UpstreamRequest("POST", "/m", json={}))
    assert up.connections == 1  # a chunked answer read to its end keeps the connection


def test_an_answer_without_length_ends_with_its_connection(server):
    up = server(raw=b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", hang_up=True)
    upstream = upstream_for(up.url)
    assert upstream.send(get("/")).content == b"all of it"
    upstream.send(get("/"))
    assert up.connections == 2


# -- proxies ------------------------------------------------------------------------------


def test_the_proxy_and_no_proxy_are_read_once_at_start(server, monkeypatch):
    proxy, direct = server(), server()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "direct.instamsg.test")
    # Never resolved: the proxy is asked for it, by its absolute URL.
    via_proxy = create_app({"api_url": "http://api.instamsg.test"})
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypass = create_app({"api_url": direct.url})
    monkeypatch.delenv("HTTP_PROXY")  # read once: changing it now changes nothing
    args = {"accessToken": TOKEN, "id": "t-1"}

    answer = via_proxy.test_client().post("/blocks/getSingleTenant", json=args)
    assert answer.status_code == 200, answer.json
    assert proxy.requests[0][0] == b"GET http://api.instamsg.test/api/v1/tenants/t-1 HTTP/1.1"

    answer = bypass.test_client().post("/blocks/getSingleTenant", json=args)
    assert answer.status_code == 200, answer.json
    assert len(proxy.requests) == 1 and direct.requests[0][0].startswith(b"GET /api/v1/")


@pytest.mark.parametrize(
    "no_proxy, expected",
    [("", {"https": "http://proxy.corp.test:3128"}), ("api.instamsg.io", {})]
    + [(".instamsg.io", {}), ("other.test", {"https": "http://proxy.corp.test:3128"})],
)
def test_https_proxy_applies_unless_no_proxy_names_the_upstream(no_proxy, expected, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.test:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    session = upstream_session(Settings(api_url="https://api.instamsg.io"))
    assert {k: v for k, v in session.proxies.items() if k == "https"} == expected
    # Read here, once: no call looks the environment up again.
    assert session.trust_env is False


# -- statuses without a name in a table ---------------------------------------------------


@pytest.mark.parametrize(
    "status, line",
    [(418, "418 I'M A TEAPOT"), (451, "451 UNAVAILABLE FOR LEGAL REASONS"), (499, "499 UNKNOWN")],
)
def test_an_upstream_status_is_answered_with_its_own_reason(status, line, client, upstream):
    upstream.get("/api/v1/tenants/t-1", status=status, json={"message": "no"})
    answer = client.post("/blocks/getSingleTenant", json={"accessToken": TOKEN, "id": "t-1"})
    assert answer.status == line
    assert answer.json["contextWrites"]["to"]["upstream"]["status"] == status


# -- the sandbox adapter ------------------------------------------------------------------


@pytest.fixture
def tiny():
    from sandbox.http import Dropped, TimedOut

    app = Flask("tiny")

    @app.get("/two-cookies")
    def two_cookies():
        response = Response(b"{}", mimetype="application/json")
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    @app.post("/echo/<path:rest>")
    def echo(rest):
        from flask import request

        return {
            "path": request.path,
            "query": request.query_string.decode(),
            "body": len(request.get_data()),
            "type": request.content_type,
        }

    # As the sandbox does (signal_faults): the fault is raised past Flask, to the caller.
    inner = app.wsgi_app

    def faulty(environ, start_response):
        fault = {"/drop": Dropped, "/slow": TimedOut}.get(environ["PATH_INFO"])
        if fault is not None:
            raise fault()
        return inner(environ, start_response)

    app.wsgi_app = faulty
    session = requests.Session()
    session.mount(SANDBOX_URL + "/", SandboxAdapter(app))
    return session


def test_the_sandbox_adapter_keeps_repeated_headers(tiny):
    reply = tiny.get(SANDBOX_URL + "/two-cookies")
    assert reply.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]


def test_the_sandbox_adapter_passes_path_query_and_body(tiny):
    reply = tiny.post(
        SANDBOX_URL + "/echo/a%20b?x=1&y=2", data=b"12345", headers={"Content-Type": "text/plain"}
    )
    assert reply.json() == {
        "path": "/echo/a b",
        "query": "x=1&y=2",
        "body": 5,
        "type": "text/plain",
    }


def test_the_sandbox_adapter_turns_faults_into_requests_exceptions(tiny):
    with pytest.raises(requests.ConnectionError):
        tiny.get(SANDBOX_URL + "/drop")
    with pytest.raises(requests.ReadTimeout):
        tiny.get(SANDBOX_URL + "/slow")


def test_live_and_sandbox_differ_only_by_the_adapter_mounted(tmp_path):
    live = create_app({"data_dir": str(tmp_path)})
    sandboxed = create_app({"sandbox": True, "data_dir": str(tmp_path)})
    live_session = live.extensions["instamsg"].upstream.session
    sandbox_session = sandboxed.extensions["instamsg"].upstream.session
    assert type(live_session) is type(sandbox_session) is requests.Session
    assert type(live_session.get_adapter("https://api.instamsg.io/x")).__name__ == "UpstreamAdapter"
    assert isinstance(sandbox_session.get_adapter(SANDBOX_URL + "/x"), SandboxAdapter)
