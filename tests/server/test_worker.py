"""How the connector's gunicorn worker writes answers and shares its turns
(connector/server/worker.py).

The unit tests hand the client-socket wrapper a recording socket; the others run gunicorn as
`make run` starts it, in sandbox mode, on loopback.
"""

import json
import socket
import time

import pytest

from connector.server.worker import COALESCE_MAX, Connection
from tests.support.metrics import in_flight
from tests.support.servers import address, gunicorn, sandbox, unaccepted
from tests.support.waiting import wait_until


class RecordingSocket:
    """What the worker writes, one entry per system-level call."""

    def __init__(self):
        self.calls = []

    def sendall(self, data, *args):
        self.calls.append(("sendall", bytes(data)))

    def send(self, data, *args):
        self.calls.append(("send", bytes(data)))
        return len(data)

    def sendfile(self, file, offset=0, count=None):
        self.calls.append(("sendfile", file.read()))

    def shutdown(self, how):
        self.calls.append(("shutdown", how))


def answering(sock=None) -> Connection:
    """A wrapper in the state handle_request puts it in before the app runs."""
    conn = Connection(sock or RecordingSocket(), worker=None)
    conn.hold = True
    return conn


HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"


def test_an_answers_head_and_body_leave_in_one_write():
    conn = answering()
    conn.sendall(HEAD)
    conn.sendall(b"{}")
    conn.flush()  # the end of the request: nothing left to send
    assert conn._sock.calls == [("sendall", HEAD + b"{}")]


def test_a_large_body_is_not_copied_behind_the_head():
    conn = answering()
    body = b"x" * (COALESCE_MAX + 1)
    conn.sendall(HEAD)
    conn.sendall(body)
    assert conn._sock.calls == [("sendall", HEAD), ("sendall", body)]


def test_a_head_without_a_body_leaves_when_the_request_ends():
    conn = answering()
    conn.sendall(HEAD)
    assert conn._sock.calls == []
    conn.flush()
    conn.flush()
    assert conn._sock.calls == [("sendall", HEAD)]


def test_later_writes_of_a_streamed_answer_go_straight_out():
    conn = answering()
    for part in (HEAD, b"1", b"2", b"3"):
        conn.sendall(part)
    assert conn._sock.calls == [("sendall", HEAD + b"1"), ("sendall", b"2"), ("sendall", b"3")]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda conn: conn.send(b"HTTP/1.1 100 Continue\r\n\r\n"), id="send"),
        pytest.param(lambda conn: conn.sendfile(FakeFile(b"file")), id="sendfile"),
        pytest.param(lambda conn: conn.shutdown(socket.SHUT_RDWR), id="shutdown"),
    ],
)
def test_any_other_way_of_writing_sends_a_held_head_first(other):
    conn = answering()
    conn.sendall(HEAD)
    other(conn)
    assert conn._sock.calls[0] == ("sendall", HEAD)
    assert len(conn._sock.calls) == 2


class FakeFile:
    def __init__(self, data):
        self.data = data

    def read(self):
        return self.data


def test_after_100_continue_the_head_still_leaves_with_the_body():
    conn = answering()
    conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    conn.sendall(HEAD)
    conn.sendall(b"{}")
    assert conn._sock.calls == [
        ("send", b"HTTP/1.1 100 Continue\r\n\r\n"),
        ("sendall", HEAD + b"{}"),
    ]


def test_nothing_is_held_outside_a_request():
    conn = Connection(RecordingSocket(), worker=None)  # e.g. gunicorn's own 400 or 408 writer
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert conn._sock.calls == [("sendall", b"HTTP/1.1 400 Bad Request\r\n\r\n")]


# -- through gunicorn ------------------------------------------------------------------------


def exchange(where, raw: bytes, until: bytes, within=10.0) -> bytes:
    with socket.create_connection(where, timeout=within) as sock:
        sock.sendall(raw)
        got = b""
        deadline = time.monotonic() + within
        while until not in got and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


@pytest.mark.slow
def test_heads_bodies_files_and_100_continue_arrive_whole_and_in_order(tmp_path):
    with gunicorn(sandbox(tmp_path), workers=1) as (base, process):
        where = address(base)
        # HEAD: a head and no body.
        head = exchange(where, b"HEAD /healthz HTTP/1.1\r\nHost: c\r\n\r\n", b"\r\n\r\n")
        # A static file of the playground (gunicorn sends it with sendfile, after its head).
        page = exchange(
            where,
            b"GET /playground/static/playground.js HTTP/1.1\r\n"
            b"Host: c\r\nConnection: close\r\n\r\n",
            b"\x00never",
        )
        # A client that waits for "100 Continue" before it sends its body.
        body = json.dumps({"clientKey": "demo-key", "clientSecret": "demo-secret"}).encode()
        with socket.create_connection(where, timeout=10) as sock:
            sock.sendall(
                b"POST /blocks/getAccessToken HTTP/1.1\r\nHost: c\r\n"
                b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            )
            interim = sock.recv(100)
            sock.sendall(body)
            final = b""
            while b'"callback"' not in final:
                final += sock.recv(65536)
        log = process.output()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    status, _, rest = page.partition(b"\r\n")
    headers, _, content = rest.partition(b"\r\n\r\n")
    length = int(
        next(h for h in headers.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
            b":"
        )[1]
    )
    assert status == b"HTTP/1.1 200 OK" and len(content) == length > 1000
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 OK\r\n") and b'"access_token"' in final
    assert "Traceback" not in log


@pytest.mark.slow
def test_a_connection_whose_requests_never_wait_does_not_starve_the_others(tmp_path):
    # In sandbox mode InstaMsg answers in process: a call never waits on a socket, and a
    # client that sends many requests at once has every byte ready. Without turns, the worker
    # answers all of them before it reads anything else.
    pipelined = 200  # their answers (about 70 KB) fit the socket buffer: no write has to wait
    body = json.dumps({"clientKey": "demo-key", "clientSecret": "demo-secret"}).encode()
    token = (
        b"POST /blocks/getAccessToken HTTP/1.1\r\nHost: c\r\nX-Request-Id: %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    )
    health = b"GET /healthz HTTP/1.1\r\nHost: c\r\nX-Request-Id: other-one\r\n\r\n"
    with gunicorn(sandbox(tmp_path), workers=1) as (base, process):
        where = address(base)
        busy = socket.create_connection(where, timeout=20)
        other = socket.create_connection(where, timeout=20)
        wait_until(lambda: unaccepted(base) == 0, 10)  # both accepted, waiting for a request
        busy.sendall(
            b"".join(token % (b"busy-%03d" % i, len(body), body) for i in range(pipelined))
        )
        received = {"busy": busy.recv(1 << 16), "other": b""}  # busy's run has begun
        other.sendall(health)
        for name, sock, count in (("other", other, 1), ("busy", busy, pipelined)):
            while received[name].count(b"HTTP/1.1 200 OK") < count:
                chunk = sock.recv(1 << 20)
                assert chunk, f"the {name} connection was closed early"
                received[name] += chunk
            sock.close()
        order = [
            json.loads(line)["request_id"]
            for line in process.output().splitlines()
            if line.startswith("{") and '"msg": "request"' in line.replace('":"', '": "')
        ]
    order = [rid for rid in order if rid.startswith(("busy-", "other-"))]
    assert received["other"].startswith(b"HTTP/1.1 200 OK")
    assert len(order) == pipelined + 1
    # Without turns it is answered after all of busy's; with turns, at busy's next turn once
    # its bytes are in (how soon depends on how quickly this process sent them).
    assert order.index("other-one") < pipelined, order.index("other-one")


@pytest.mark.slow
def test_sigterm_closes_idle_keep_alive_connections_and_finishes_calls_in_flight(tmp_path):
    """A stop must not wait for an idle keep-alive connection (a load balancer keeps many):
    it is closed at once, while a call still running finishes and is answered."""
    import signal
    import threading

    import requests

    env = sandbox(tmp_path, GUNICORN_GRACEFUL_TIMEOUT="30")
    with gunicorn(env, workers=1) as (base, process):
        idle = socket.create_connection(address(base))
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")  # kept alive, now idle
        rule = {"fault": "slow", "delay": 2, "path": "/oauth2/token"}
        assert requests.post(base + "/_sandbox/faults", json=rule, timeout=10).ok
        answers = []
        slow = threading.Thread(
            target=lambda: answers.append(
                requests.post(
                    base + "/blocks/getAccessToken",
                    json={"clientKey": "demo-key", "clientSecret": "demo-secret"},
                    timeout=30,
                )
            )
        )
        slow.start()
        wait_until(lambda: in_flight(base) >= 1, 10)  # the slow call is in the worker
        process.send_signal(signal.SIGTERM)
        idle.settimeout(20)
        assert idle.recv(4096) == b""  # closed by the stop, not by the 75 s keep-alive wait
        slow.join(30)
        assert process.wait(timeout=30) == 0
        output = process.output()
    assert answers and answers[0].status_code == 200
    assert "graceful timeout" not in output.lower()
    assert "idle, and the worker is stopping" in output
