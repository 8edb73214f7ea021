"""The requests session to InstaMsg over real loopback sockets: pooling, connections the
server hung up, chunked and interim answers, repeated headers, proxies, and odd statuses;
and the sandbox adapter that stands in for the socket in sandbox mode."""

import socket

import pytest
import requests
from flask import Flask, Response
from gevent import monkey

from app import create_app
from connector import poll
from connector.config import Settings
from connector.errors import ApiError
from connector.upstream import transport
from connector.upstream.client import Upstream, UpstreamRequest
from connector.upstream.sandbox import SANDBOX_URL, SandboxAdapter
from connector.upstream.transport import _HTTPConnection, upstream_session
from tests.support.loopback import Loopback
from tests.support.servers import ROOT
from tests.support.upstream import INSTAMSG, TOKEN

OK = b'{"ok": true}'


def upstream_for(url, **settings) -> Upstream:
    settings = Settings(api_url=url, **settings)
    return Upstream(upstream_session(settings), url, 1, 1)


def get(path="/a", stream=False):
    return UpstreamRequest("GET", path, stream=stream, block="test")


def test_connections_are_kept_alive_and_reused(loopback):
    loopback.get("/a", body=OK)
    upstream = upstream_for(loopback.url)
    for _ in range(5):
        assert upstream.send(get()).content == OK
    assert loopback.connections == 1 and len(loopback.calls) == 5


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_connection_the_server_hung_up_is_not_reused(loopback, method):
    # The server closes each connection after its answer without saying so (no
    # "Connection: close"), as a server's idle timeout does.
    loopback.add(method, "/a", body=OK, hang_up=True)
    upstream = upstream_for(loopback.url)
    for n in range(1, 4):
        reply = upstream.send(UpstreamRequest(method, "/a", json={}))
        assert reply.status_code == 200
        loopback.wait_for_closed(n)  # the server has hung up by now
    assert loopback.connections == 3 and len(loopback.calls) == 3


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
    assert poll.POLL is monkey.get_original("select", "poll")


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
    assert pool.ConnectionCls is transport._HTTPSConnection  # nothing is connected
    assert bool(session.proxies) is bool(proxy)


def test_a_redirect_from_instamsg_is_an_error_that_names_it(loopback):
    moved = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    loopback.get("/a", raw=moved)
    loopback.post("/a", raw=moved)
    upstream = upstream_for(loopback.url)
    for call in (get(), UpstreamRequest("POST", "/a", json={"x": 1}, block="test")):
        with pytest.raises(ApiError) as raised:
            upstream.send(call)
        assert raised.value.upstream["status"] == 302
        assert "unexpected redirect" in str(raised.value)
    assert [c.request.line for c in loopback.calls] == ["GET /a HTTP/1.1", "POST /a HTTP/1.1"]


def test_the_pool_is_found_once_per_origin_and_again_after_the_adapter_closes(loopback):
    loopback.get("/a", body=OK)
    loopback.get("/b", body=OK)
    upstream = upstream_for(loopback.url)
    adapter = upstream.session.get_adapter(loopback.url)
    upstream.send(get())
    upstream.send(get("/b?x=1"))
    (pool,) = adapter._pools.values()
    assert loopback.connections == 1
    adapter.close()  # as Session.close does
    assert adapter._pools == {}
    assert upstream.send(get()).status_code == 200
    (renewed,) = adapter._pools.values()
    assert renewed is not pool and loopback.connections == 2 and len(loopback.calls) == 3


def test_a_stream_read_to_the_end_returns_its_connection(loopback):
    loopback.get("/f", body=b"x" * 300_000)
    upstream = upstream_for(loopback.url)
    reply = upstream.send(get("/f", stream=True))
    assert sum(len(c) for c in reply.iter_content(65536)) == 300_000
    upstream.send(get("/f"))
    assert loopback.connections == 1


def test_a_stream_abandoned_halfway_closes_its_connection(loopback):
    loopback.get("/f", body=b"x" * 300_000)
    upstream = upstream_for(loopback.url)
    reply = upstream.send(get("/f", stream=True))
    next(reply.iter_content(1000))
    reply.close()
    upstream.send(get("/f"))
    assert loopback.connections == 2


def test_a_base_path_is_kept(loopback):
    loopback.get("/prefix/api/v1/tenants", body=OK)
    upstream_for(loopback.url + "/prefix").send(get("/api/v1/tenants"))
    assert loopback.calls[0].request.line == "GET /prefix/api/v1/tenants HTTP/1.1"


CHUNKED = (
    b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nLocation: /m/1\r\n"
    b"Warning: 199 - first\r\nwarning: 199 - second\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


def test_chunked_bodies_interim_answers_and_repeated_headers(loopback):
    loopback.post("/m", raw=CHUNKED)
    upstream = upstream_for(loopback.url)
    reply = upstream.send(UpstreamRequest("POST", "/m", json={}))
    assert (reply.status_code, reply.content) == (201, b"hello world")
    assert reply.headers["location"] == "/m/1"
    # A header that repeats keeps every value (the old pool kept only the last one).
    assert reply.raw.headers.getlist("Warning") == ["199 - first", "199 - second"]
    assert reply.headers["Warning"] == "199 - first, 199 - second"
    upstream.send(UpstreamRequest("POST", "/m", json={}))
    assert loopback.connections == 1  # a chunked answer read to its end keeps the connection


def test_an_answer_without_length_ends_with_its_connection(loopback):
    whole = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"
    loopback.get("/", raw=whole, hang_up=True)
    upstream = upstream_for(loopback.url)
    assert upstream.send(get("/")).content == b"all of it"
    upstream.send(get("/"))
    assert loopback.connections == 2


# -- proxies ------------------------------------------------------------------------------


def test_the_proxy_and_no_proxy_are_read_once_at_start(loopback, monkeypatch):
    with Loopback() as direct:
        proxied_and_direct(loopback, direct, monkeypatch)
        direct.check()


def proxied_and_direct(proxy, direct, monkeypatch):
    proxy.get("/api/v1/tenants/t-1", body=OK, content_type="application/json")
    direct.get("/api/v1/tenants/t-1", body=OK, content_type="application/json")
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
    assert proxy.calls[0].request.line == "GET http://api.instamsg.test/api/v1/tenants/t-1 HTTP/1.1"

    answer = bypass.test_client().post("/blocks/getSingleTenant", json=args)
    assert answer.status_code == 200, answer.json
    assert len(proxy.calls) == 1 and direct.calls[0].request.line.startswith("GET /api/v1/")


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
def test_an_upstream_status_is_answered_with_its_own_reason(status, line, client, mocked):
    mocked.get(INSTAMSG + "/api/v1/tenants/t-1", status=status, json={"message": "no"})
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


# -- one outcome table ----------------------------------------------------------------------

# status: (ran nothing, definite, sent again, retryable for the caller, renews the token)
OUTCOMES = {
    200: (False, True, False, False, False),
    201: (False, True, False, False, False),
    302: (False, True, False, False, False),
    400: (False, True, False, False, False),
    401: (True, True, False, False, True),
    403: (False, True, False, False, False),
    404: (False, True, False, False, False),
    409: (False, True, False, False, False),
    418: (False, True, False, False, False),
    429: (True, True, True, True, False),
    500: (False, False, False, True, False),
    502: (False, False, True, True, False),
    503: (False, False, True, True, False),
    504: (False, False, True, True, False),
    507: (False, False, False, True, False),
}


@pytest.mark.parametrize(("status", "expected"), OUTCOMES.items())
def test_what_each_status_says_about_the_call_is_one_table(status, expected):
    from connector.upstream.outcomes import status_rule

    rule = status_rule(status)
    said = (rule.ran_nothing, rule.definite, rule.resend, rule.retryable, rule.renew_token)
    assert said == expected


def test_no_reader_decides_a_status_on_its_own():
    """The client, the retry policy, the key rules and the managed tokens read the table:
    none of them compares a status with a number of its own."""
    import re

    readers = [
        "connector/upstream/client.py",
        "connector/upstream/retry.py",
        "connector/engine/idempotency_keys.py",
        "connector/engine/tokens.py",
    ]
    numbered = re.compile(r"(status\w*|status_code)\W+(==|!=|<|>|<=|>=|in|not in)\W+\(?\d{3}")
    for path in readers:
        text = (ROOT / path).read_text()
        assert not numbered.search(text), path
