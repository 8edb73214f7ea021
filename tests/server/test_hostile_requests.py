"""Malformed and oversized requests get a clean answer from gunicorn's parser (under the
connector's own worker, connector/server/worker.py) and never reach a block or the upstream."""

import json
import socket

import pytest

from connector.web.body import MAX_ARGS
from tests.support.loopback import Loopback
from tests.support.servers import gunicorn
from tests.support.upstream import TOKEN
from tests.support.waiting import wait_until

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

BODY = json.dumps({"accessToken": TOKEN, "id": "t-1"}).encode()
PATH = "/blocks/getSingleTenant"


def request(path=PATH, headers=(), body=BODY, length=True, host=("connector",)):
    """A raw HTTP/1.1 request that would run getSingleTenant if it were accepted."""
    lines = [f"POST {path} HTTP/1.1", *(f"Host: {name}" for name in host)]
    lines.append("Content-Type: application/json")
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes) -> bytes:
    """The request above with a chunked body, given whole (its chunk lines included)."""
    return request(headers=["Transfer-Encoding: chunked"], body=body, length=False)


# gunicorn.conf.py: LIMIT_REQUEST_LINE 4094, LIMIT_REQUEST_FIELDS 50,
# LIMIT_REQUEST_FIELD_SIZE 8190 (bytes). (gunicorn's own defaults let 100 fields through.)
HOSTILE = [
    pytest.param(
        request(headers=["Transfer-Encoding: chunked"], body=b"0\r\n\r\n"),
        "400 Bad Request",
        id="Content-Length and Transfer-Encoding",
    ),
    pytest.param(
        request(headers=["X-Filler: " + "a" * 9000]),
        "431 Request Header Fields Too Large",
        id="one header field over 8190 bytes",
    ),
    pytest.param(
        request(headers=[f"X-Filler-{n}: x" for n in range(120)]),
        "431 Request Header Fields Too Large",
        id="120 header fields",
    ),
    pytest.param(
        request(path=PATH + "?pad=" + "a" * 5000),
        "414 URI Too Long",
        id="request line over 4094 bytes",
    ),
    pytest.param(
        request(headers=[f"X-Filler-{n}: x" for n in range(60)]),
        "431 Request Header Fields Too Large",
        id="60 header fields",
    ),
    pytest.param(request(host=()), "400 Bad Request", id="HTTP/1.1 without Host"),
    pytest.param(request(host=("a", "b")), "400 Bad Request", id="two Host fields"),
]


def exchange(base, raw: bytes) -> bytes:
    """Send ``raw`` on a fresh connection; everything the server writes until it closes."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The connector under gunicorn, in live mode against a recording upstream."""
    with Loopback() as upstream:  # a separate process calls it: a real server, stopped after
        upstream.get("/api/v1/tenants/t-1", json={"id": "t-1"})
        env = {
            "INSTAMSG_SANDBOX": "0",
            "INSTAMSG_API_URL": upstream.url,
            "INSTAMSG_DATA_DIR": str(tmp_path_factory.mktemp("data")),
            "GUNICORN_WORKER_CLASS": "",
        }
        with gunicorn(env, workers=1) as (base, process):
            yield base, process, upstream


def requests_seen_by_the_connector(process) -> int:
    return process.output().count('"msg":"request"')


@pytest.mark.parametrize(("raw", "status"), HOSTILE)
def test_a_hostile_request_is_refused_before_any_block_runs(live, raw, status):
    base, process, upstream = live
    upstream.calls.clear()
    before = requests_seen_by_the_connector(process)
    answer = exchange(base, raw)
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    assert head[0] == f"HTTP/1.1 {status}"
    assert "Connection: close" in head
    assert upstream.calls == []
    assert requests_seen_by_the_connector(process) == before


def test_a_720_kb_head_is_refused_before_any_block_runs(live):
    # 90 fields of 8 KB: within gunicorn's defaults. The server stops reading at the 51st field
    # and closes with the rest unread, so the 431 may be lost to the reset that follows.
    base, process, upstream = live
    upstream.calls.clear()
    before = requests_seen_by_the_connector(process)
    try:
        answer = exchange(base, request(headers=[f"X-F-{n}: " + "a" * 8000 for n in range(90)]))
    except ConnectionResetError:
        answer = b""
    assert answer[:12] in (b"HTTP/1.1 431", b"")
    assert upstream.calls == []
    assert requests_seen_by_the_connector(process) == before


def test_the_same_request_well_formed_does_reach_the_upstream(live):
    # The control: what the hostile rows above are refused before is really wired through.
    base, process, upstream = live
    upstream.calls.clear()
    before = requests_seen_by_the_connector(process)
    answer = exchange(base, request(headers=["Connection: close"]))
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert [call.request.url for call in upstream.calls] == [upstream.url + "/api/v1/tenants/t-1"]
    assert requests_seen_by_the_connector(process) == before + 1


# Each body below is followed, in the same packet, by a request that would be served if the
# server took the bytes after a body it cannot frame for the next request (a smuggled request).
SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: connector\r\n\r\n"
#: the same, ending the connection: sent after a request to see the connection go on
LAST = b"GET /healthz HTTP/1.1\r\nHost: connector\r\nConnection: close\r\n\r\n"
CHUNK = b"%x\r\n%s\r\n" % (len(BODY), BODY)

UNFRAMED = [
    pytest.param(CHUNK + b"0x0\r\n\r\n", id="last chunk size 0x0"),
    pytest.param(CHUNK + b"+0\r\n\r\n", id="last chunk size +0"),
    pytest.param(b"-%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY), id="a negative chunk size"),
    pytest.param(
        b'%x;name="a\r\nb"\r\n%s\r\n0\r\n\r\n' % (len(BODY), BODY),
        id="a quoted chunk extension holding CRLF",
    ),
    pytest.param(b"%x\n%s\n0\n\n" % (len(BODY), BODY), id="LF-only chunk lines"),
    pytest.param(CHUNK + b"0\r\nX-Trailer: 1\n\r\n", id="a trailer line ending in a bare LF"),
    pytest.param(CHUNK + b"0\r\nX-Trailer 1\r\n\r\n", id="a trailer line without a colon"),
    pytest.param(CHUNK + b"ffff\r\nshort", id="a chunk cut off by the client"),
]


def exchange_half_closed(base, raw: bytes) -> bytes:
    """Like exchange, but the client says it has sent everything (a cut-off body ends)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("body", UNFRAMED)
def test_a_body_that_cannot_be_framed_is_a_400_and_ends_the_connection(live, body):
    base, process, upstream = live
    upstream.calls.clear()
    answer = exchange_half_closed(base, chunked(body) + SMUGGLED)
    head, payload = answer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 400 ")
    assert "Connection: close" in lines
    assert json.loads(payload)["contextWrites"]["to"]["status_code"] == "INVALID_REQUEST"
    assert answer.count(b"HTTP/1.1 ") == 1  # the smuggled request was never served
    assert upstream.calls == []
    assert "unexpected error" not in process.output()


def test_well_formed_chunks_with_a_trailer_run_the_block(live):
    base, _, upstream = live
    upstream.calls.clear()
    answer = exchange(base, chunked(CHUNK + b"0\r\nX-Trailer: 1\r\n\r\n") + LAST)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.count(b"HTTP/1.1 200 OK") == 2  # and the next request on the connection too
    assert len(upstream.calls) == 1


def test_a_later_http_1_x_is_answered_as_http_1_1(live):
    base, _, _ = live
    answer = exchange(
        base, b"GET /healthz HTTP/1.2\r\nHost: connector\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


def urlencoded(fields: int) -> bytes:
    """getSingleTenant's two arguments and filler up to ``fields`` form fields."""
    filler = "".join(f"&f{n}=x" for n in range(fields - 2))
    body = f"accessToken={TOKEN}&id=t-1{filler}".encode()
    return request(body=body).replace(b"application/json", b"application/x-www-form-urlencoded")


def multipart(fields: int) -> bytes:
    values = [("accessToken", TOKEN), ("id", "t-1")] + [(f"f{n}", "x") for n in range(fields - 2)]
    parts = "".join(
        f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in values
    )
    body = (parts + "--B--\r\n").encode()
    return request(body=body).replace(b"application/json", b"multipart/form-data; boundary=B")


FORMS = [
    pytest.param(urlencoded(MAX_ARGS + 1), id="urlencoded, one field too many"),
    pytest.param(urlencoded(1_000_000), id="urlencoded, a million fields (9.9 MB)"),
    pytest.param(multipart(MAX_ARGS + 1), id="multipart, one field too many"),
    pytest.param(multipart(100_000), id="multipart, 100,000 fields"),
]


@pytest.mark.parametrize("raw", FORMS)
def test_a_form_stops_being_parsed_past_the_argument_limit(live, raw):
    # "more than MAX_ARGS": the parser stopped at the limit and never counted the rest (it used to
    # split every field first, and then say how many there were). The worker reads what was
    # left of the body, and the request behind it is served.
    base, _, upstream = live
    upstream.calls.clear()
    answer = exchange(base, raw + LAST)
    head, payload = answer.split(b"\r\n\r\n", 1)
    payload, after = payload.split(b"HTTP/1.1 ", 1)
    error = json.loads(payload)["contextWrites"]["to"]
    assert head.startswith(b"HTTP/1.1 400 ")
    assert after.startswith(b"200 OK")
    assert error["status_code"] == "INVALID_REQUEST"
    assert error["status_msg"].startswith(f"The call carries more than {MAX_ARGS} arguments;")
    assert upstream.calls == []


@pytest.mark.parametrize(
    "raw", [urlencoded(MAX_ARGS), multipart(MAX_ARGS)], ids=["urlencoded", "multipart"]
)
def test_a_form_of_max_args_fields_is_taken(live, raw):
    base, _, upstream = live
    upstream.calls.clear()
    assert exchange(base, raw + LAST).startswith(b"HTTP/1.1 200 OK")
    assert len(upstream.calls) == 1


#: A token a client put where gunicorn's parser quotes it back in its error line.
LEAKED = "tok-c4f1e9"
REFUSED_WITH_A_TOKEN = [
    pytest.param(f"GET /blocks/getTenants?accessToken={LEAKED}\x01 HTTP/1.1\r\n\r\n", id="query"),
    pytest.param(f"GET /webhooks/h-1/{LEAKED} HTTP/1.1 x\r\n\r\n", id="a hook's token URL"),
    pytest.param(
        f"GET /healthz HTTP/1.1\r\nHost: c\r\nAuthorization Bearer {LEAKED}\r\n\r\n",
        id="a header without its colon",
    ),
    pytest.param(f"{LEAKED}\x00 / HTTP/1.1\r\n\r\n", id="the method"),
]


@pytest.mark.parametrize("raw", REFUSED_WITH_A_TOKEN)
def test_a_refused_request_is_logged_as_json_without_what_the_client_sent(live, raw):
    # gunicorn's error line quoted the whole request line or header field, in its plain format.
    base, process, _ = live
    before = len(process.output().splitlines())
    assert exchange(base, raw.encode("latin-1")).startswith(b"HTTP/1.1 400 ")
    lines = wait_until(lambda: process.output().splitlines()[before:] or None, within=5)
    entries = [json.loads(line) for line in lines]  # every line is ours: JSON
    assert any(e["msg"].startswith("Invalid request from ip=127.0.0.1: ") for e in entries)
    assert LEAKED not in process.output()
