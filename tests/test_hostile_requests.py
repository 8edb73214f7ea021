"""Malformed and oversized requests get a clean answer from gunicorn's parser (under the
connector's own worker, connector/server/worker.py) and never reach a block or the upstream."""

import json
import socket

import pytest

from tests.support.loopback import Loopback
from tests.support.servers import gunicorn
from tests.support.upstream import TOKEN

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

BODY = json.dumps({"accessToken": TOKEN, "id": "t-1"}).encode()
PATH = "/blocks/getSingleTenant"


def request(path=PATH, headers=(), body=BODY, length=True):
    """A raw HTTP/1.1 request that would run getSingleTenant if it were accepted."""
    lines = [f"POST {path} HTTP/1.1", "Host: connector", "Content-Type: application/json"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# gunicorn's defaults: limit_request_line 4094, limit_request_fields 100,
# limit_request_field_size 8190 (bytes).
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


def test_the_same_request_well_formed_does_reach_the_upstream(live):
    # The control: what the hostile rows above are refused before is really wired through.
    base, process, upstream = live
    upstream.calls.clear()
    before = requests_seen_by_the_connector(process)
    answer = exchange(base, request(headers=["Connection: close"]))
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert [call.request.url for call in upstream.calls] == [upstream.url + "/api/v1/tenants/t-1"]
    assert requests_seen_by_the_connector(process) == before + 1
