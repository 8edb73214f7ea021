"""Slow clients against the connector as `make run` starts it (connector/server/worker.py).

Thousands of half-sent requests are opened as non-blocking sockets from one thread, so the
flood itself takes well under a second; the deadlines are shortened to keep the suite fast.
"""

import http.client
import json
import select
import selectors
import socket
import time

import pytest
import requests

from connector.config import BODY_TIMEOUT, HEADER_TIMEOUT, ConfigError, client_timeouts
from tests.support.servers import address, gunicorn, sandbox, unaccepted
from tests.support.upstream import APP
from tests.support.waiting import wait_until

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

DEADLINE = 2  # seconds, for both CLIENT_HEADER_TIMEOUT and CLIENT_BODY_TIMEOUT

HALF_A_HEAD = b"POST /blocks/getAccessToken HTTP/1.1\r\nHost: connector\r\nContent-Type: appl"
HALF_A_BODY = (
    b"POST /blocks/getAccessToken HTTP/1.1\r\nHost: connector\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b'{"args": {'
)


def open_stalled(where, count, payload, within=20.0):
    """``count`` connections that each send ``payload`` and then nothing."""
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(where)
        selector.register(sock, selectors.EVENT_WRITE)
    sent = []
    deadline = time.monotonic() + within
    while len(sent) < count and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            selector.unregister(key.fileobj)
            key.fileobj.send(payload)  # a few dozen bytes: always fits the empty buffer
            sent.append(key.fileobj)
    selector.close()
    assert len(sent) == count, f"only {len(sent)} of {count} connections were opened"
    return sent


def wait_until_closed(socks, within):
    """How the server ended each connection: a list of first answer lines (b"" for none).
    Connections still open after ``within`` seconds are left out."""
    selector = selectors.DefaultSelector()
    answers = {}
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + within
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
            if data:
                answers.setdefault(sock, data.split(b"\r\n", 1)[0])
            else:
                selector.unregister(sock)
                answers.setdefault(sock, b"")
                sock.close()
    for key in list(selector.get_map().values()):
        answers.pop(key.fileobj, None)
        key.fileobj.close()
    selector.close()
    return list(answers.values())


def normal_calls(base):
    """A health check and a block call from another client; their latencies in ms."""
    started = time.perf_counter()
    health = requests.get(base + "/healthz", timeout=5)
    middle = time.perf_counter()
    token = requests.post(base + "/blocks/getAccessToken", json=APP, timeout=5)
    ended = time.perf_counter()
    assert health.status_code == 200
    assert token.status_code == 200, token.text
    assert token.json()["contextWrites"]["to"]["access_token"]
    return round((middle - started) * 1000, 1), round((ended - middle) * 1000, 1)


@pytest.mark.parametrize(
    ("count", "payload"),
    [(5000, HALF_A_HEAD), (200, HALF_A_BODY)],
    ids=["5000 half-sent heads", "200 stalled bodies"],
)
def test_stalled_requests_starve_nobody_and_are_closed_with_a_408(tmp_path, count, payload):
    with gunicorn(sandbox(tmp_path), workers=2) as (base, process):
        stalled = open_stalled(address(base), count, payload)
        flooded = time.monotonic()
        latencies = [normal_calls(base)]
        while time.monotonic() - flooded < DEADLINE + 0.5:
            time.sleep(0.25)
            latencies.append(normal_calls(base))
        answers = wait_until_closed(stalled, within=DEADLINE + 10)
        latencies.append(normal_calls(base))
        log = process.output()
    print(f"\n{count} stalled: healthz / getAccessToken ms during and after: {latencies}")
    assert len(answers) == count, f"{count - len(answers)} stalled connections are still open"
    assert set(answers) <= {b"HTTP/1.1 408 Request Timeout", b""}
    assert answers.count(b"HTTP/1.1 408 Request Timeout") > count * 0.9
    assert "Using worker: connector.server.worker.DeadlineWorker" in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/healthz", None), ("POST", "/nowhere", b'{"unread": "by the 404"}')],
    ids=["a GET", "a body the application never reads"],
)
def test_two_requests_on_one_kept_alive_connection_even_after_a_pause(tmp_path, method, path, body):
    # A kept-alive connection waits for its next request as long as `keepalive` allows:
    # the head deadline starts with the request, not with the pause before it (nor with a
    # body the application left unread).
    with gunicorn(sandbox(tmp_path, CLIENT_HEADER_TIMEOUT="1"), workers=1) as (base, _):
        conn = http.client.HTTPConnection(*address(base), timeout=5)
        conn.request(method, path, body=body)
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        time.sleep(1.5)
        conn.request("POST", "/blocks/getAccessToken", body=json.dumps(APP))
        second = conn.getresponse()
        second.read()
        reused = conn.sock is sock  # http.client reconnects silently if the server had closed
        conn.close()
    assert (first.status, second.status) == ((404 if body else 200), 200)
    assert reused and second.getheader("Connection") != "close"


def test_half_a_head_pipelined_behind_a_whole_request_has_the_head_deadline(tmp_path):
    # Both arrive in one packet: the half head is already buffered when the first answer goes
    # out, so its deadline runs from then, not the keep-alive wait (75 s).
    with gunicorn(sandbox(tmp_path), workers=1) as (base, _):
        sock = socket.create_connection(address(base), timeout=DEADLINE + 10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: connector\r\n\r\n" + HALF_A_HEAD)
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except TimeoutError:
            answer += b"(still open)"
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 408 Request Timeout\r\n" in answer  # and then the server closed


def is_open(sock):
    """Nothing from the server yet: neither an answer nor the end of the connection."""
    return not select.select([sock], [], [], 0)[0]


def states_once_closed(socks, closed: int, within: float = 10.0) -> list[bool]:
    """Which of ``socks`` are open, read once ``closed`` of them have been closed by the
    server (or ``within`` seconds passed): the server's pace, not a guessed sleep, decides."""
    deadline = time.monotonic() + within
    while True:
        states = [is_open(s) for s in socks]
        if states.count(False) >= closed or time.monotonic() > deadline:
            return states
        time.sleep(0.02)


def test_near_the_connection_limit_idle_connections_go_first_then_the_slowest_heads(tmp_path):
    # 10 connections a worker: past 9 open, each newcomer closes one that waits on its client.
    env = sandbox(tmp_path, GUNICORN_WORKER_CONNECTIONS="10", CLIENT_HEADER_TIMEOUT="30")
    with gunicorn(env, workers=1) as (base, _):
        where = address(base)

        def connect(payload):
            sock = socket.create_connection(where, timeout=5)
            sock.sendall(payload)
            return sock

        idle = []
        for _ in range(5):
            sock = connect(b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                answer += sock.recv(4096)
            idle.append(sock)
        heads = [connect(HALF_A_HEAD) for _ in range(4)]
        wait_until(lambda: unaccepted(base) == 0, 10)  # all nine accepted: at the mark
        states = [[is_open(s) for s in idle + heads]]
        newcomers = []
        for n in range(1, 8):  # each newcomer stays, half-sent, and closes one older connection
            newcomers.append(connect(HALF_A_HEAD))
            states.append(states_once_closed(idle + heads, n))
        # (Connection: close, or requests keeps it open while `health` lives, and the server
        # would wait for it when it stops.)
        health = requests.get(base + "/healthz", headers={"Connection": "close"}, timeout=5)
        states_once_closed(heads[2:] + newcomers, 1)
        idle_ends = [s.recv(4096) for s in idle]
        head_ends = [s.recv(4096).split(b"\r\n", 1)[0] for s in heads[:2]]
        still_waiting = [is_open(s) for s in heads[2:] + newcomers]
        for sock in idle + heads + newcomers:
            sock.close()  # before the server stops: it would wait for them to end
    assert [state.count(False) for state in states] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert states[5] == [False] * 5 + [True] * 4  # the idle ones first, oldest first
    assert states[7] == [False] * 7 + [True] * 2  # then the heads, oldest first
    assert idle_ends == [b""] * 5  # an idle connection is closed without a word
    assert head_ends == [b"HTTP/1.1 408 Request Timeout"] * 2
    assert health.status_code == 200
    assert still_waiting.count(False) == 1  # the health check made room too: the oldest head


def test_past_the_mark_the_longest_stalled_body_makes_room_when_nothing_else_waits(tmp_path):
    env = sandbox(tmp_path, GUNICORN_WORKER_CONNECTIONS="10", CLIENT_BODY_TIMEOUT="30")
    with gunicorn(env, workers=1) as (base, _):
        bodies = []
        for _ in range(9):
            bodies.append(socket.create_connection(address(base), timeout=5))
            bodies[-1].sendall(HALF_A_BODY)
            time.sleep(0.05)  # in order: the first one has waited longest
        health = requests.get(base + "/healthz", headers={"Connection": "close"}, timeout=5)
        first = bodies[0].recv(4096).split(b"\r\n", 1)[0]
        others = [is_open(s) for s in bodies[1:]]
        for sock in bodies:
            sock.close()
    assert health.status_code == 200
    assert first == b"HTTP/1.1 408 Request Timeout"
    assert all(others)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (HEADER_TIMEOUT, BODY_TIMEOUT)),
        ({"CLIENT_HEADER_TIMEOUT": "2.5", "CLIENT_BODY_TIMEOUT": " 60 "}, (2.5, 60.0)),
        ({"CLIENT_HEADER_TIMEOUT": "", "CLIENT_BODY_TIMEOUT": "0.1"}, (HEADER_TIMEOUT, 0.1)),
    ],
)
def test_client_timeouts_from_the_environment(env, expected):
    assert client_timeouts(env) == expected


BAD_TIMEOUTS = [
    ("CLIENT_HEADER_TIMEOUT", "soon"),
    ("CLIENT_HEADER_TIMEOUT", "0"),
    ("CLIENT_BODY_TIMEOUT", "-5"),
    ("CLIENT_BODY_TIMEOUT", "inf"),
    ("CLIENT_BODY_TIMEOUT", "nan"),
]


@pytest.mark.parametrize(("name", "value"), BAD_TIMEOUTS)
def test_a_timeout_that_is_not_a_positive_number_is_refused(name, value):
    with pytest.raises(ConfigError, match=name):
        client_timeouts({name: value})


@pytest.mark.parametrize(("name", "value"), BAD_TIMEOUTS[:2])
def test_a_bad_timeout_stops_the_start_naming_the_variable(tmp_path, name, value):
    refused = pytest.raises(RuntimeError, match=f"configuration error: {name} must be a positive")
    with refused, gunicorn(sandbox(tmp_path, **{name: value}), workers=1, timeout=10):
        pass


def test_an_empty_line_after_a_request_is_no_pipelined_request(tmp_path):
    # Some clients end a body with one more CRLF; gunicorn skips it. The connection is idle,
    # and waits past the head deadline for its next request.
    get = b"GET /healthz HTTP/1.1\r\nHost: connector\r\n\r\n"
    with gunicorn(sandbox(tmp_path, CLIENT_HEADER_TIMEOUT="1"), workers=1) as (base, _):
        sock = socket.create_connection(address(base), timeout=5)
        sock.sendall(get + b"\r\n")
        first = sock.recv(4096)
        time.sleep(1.5)
        sock.sendall(get)
        second = sock.recv(4096)
        sock.close()
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert second.startswith(b"HTTP/1.1 200 OK")
