"""What one InstaMsg answer may cost (issue 21, items 4, 5 and 7): its size, decoded, is
capped at ANSWER_LIMIT; INSTAMSG_DEADLINE bounds a whole call whatever InstaMsg's pace; and
an answer nested deeper than jsonx.MAX_DEPTH is a 502 on every path, never a bug.

First as responses-mocked calls through the app (a gzip bomb is only a header and some bytes);
then, for what only a socket shows (a body that drips, one that never ends), a real loopback
stand-in called by a real block call in live mode; and under gunicorn, a worker that reads an
endless answer."""

import time
import tracemalloc
import zlib

import pytest
import requests
from flask import Flask, Response

from app import create_app
from connector import jsonx
from connector.config import Settings
from connector.errors import UpstreamTimeout, UpstreamUnavailable
from connector.upstream.bounds import ANSWER_LIMIT, MIB, MIN_PIECE, Watchdog
from connector.upstream.client import Upstream, UpstreamRequest
from connector.upstream.retry import RetryPolicy
from connector.upstream.sandbox import SANDBOX_URL, SandboxAdapter
from connector.upstream.transport import upstream_session
from tests.support import faultkit
from tests.support.loopback import Loopback
from tests.support.servers import ROOT
from tests.support.upstream import INSTAMSG, TOKEN, VALVE
from tests.support.waiting import wait_until

MESSAGES_PATH = "/api/v1/tenants/t/clients/c/messages"
MESSAGES = INSTAMSG + MESSAGES_PATH
READ = {"accessToken": TOKEN, "tenantId": "t", "clientId": "c"}
PUBLISH = {"accessToken": TOKEN, **VALVE, "payload": "open"}
LOCATION = {"Location": MESSAGES_PATH + "/m-1"}
#: What a gzip bomb inflates to: a JSON answer padded with spaces (valid JSON, so a connector
#: without a cap takes it whole and answers 200).
BOMB_SIZE = 256 * MIB


def padded(size: int) -> bytes:
    """A JSON answer of exactly ``size`` bytes: a list, then spaces."""
    return b"[]" + b" " * (size - 2)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def packed(data_parts, wbits: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join([*(packer.compress(part) for part in data_parts), packer.flush()])


def spaces():
    yield b"[]"
    for _ in range(BOMB_SIZE // MIB):
        yield b" " * MIB


GZIP, DEFLATE = 31, 15  # zlib's wbits for the gzip and the deflate (zlib) formats


@pytest.fixture(scope="module")
def bombs() -> dict:
    """BOMB_SIZE bytes of JSON packed to about a quarter of a MiB, built a MiB at a time; and
    a gzip of that gzip (a few KiB), whose outer layer inflates to the first bomb."""
    gzip = packed(spaces(), GZIP)
    return {
        "gzip": gzip,
        "deflate": packed(spaces(), DEFLATE),
        "gzip, gzip": packed([gzip], GZIP),
    }


def envelope(answer):
    return answer.json["contextWrites"]["to"]


def call(client, block="getMessages", args=READ, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/blocks/{block}", json=args, headers=headers)


# -- item 4: what one answer may carry ------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip, gzip"])
def test_a_compression_bomb_is_refused_after_the_cap_not_inflated(client, mocked, bombs, encoding):
    mocked.get(MESSAGES, body=bombs[encoding], headers={"Content-Encoding": encoding})
    tracemalloc.start()
    try:
        answer = call(client)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.status_code == 502, answer.json
    assert envelope(answer)["status_code"] == "UPSTREAM_UNAVAILABLE"
    assert "larger than 8 MiB" in envelope(answer)["status_msg"]
    # Decoded no further than the cap and a chunk: well under what the bomb inflates to.
    assert peak < BOMB_SIZE / 8, peak


@pytest.mark.parametrize(
    "status, body, headers, expected",
    [
        (200, padded(ANSWER_LIMIT), {}, 200),
        (200, padded(ANSWER_LIMIT + 1), {}, 502),
        # No Content-Length to go by: the count while reading stops it.
        (200, padded(ANSWER_LIMIT + 1), {"Transfer-Encoding": "chunked"}, 502),
        (503, padded(ANSWER_LIMIT + 1), {}, 502),
        (404, padded(ANSWER_LIMIT + 1), {}, 502),
    ],
    ids=["at the cap", "past it", "past it, no length", "an error past it", "a 4xx past it"],
)
def test_an_answer_is_taken_up_to_the_cap_and_refused_past_it(
    client, mocked, status, body, headers, expected
):
    mocked.get(MESSAGES, status=status, body=body, headers=headers)
    answer = call(client)
    assert answer.status_code == expected, envelope(answer)
    if expected == 502:
        assert envelope(answer)["status_code"] == "UPSTREAM_UNAVAILABLE"
        assert envelope(answer)["retryable"] is False
        assert len(mocked.calls) == 1  # not retried: it would be as long again


def test_an_answer_in_too_many_pieces_is_refused_before_it_costs_seconds(tmp_path):
    # One-byte chunks: within the byte cap, each piece costs urllib3 microseconds, so a body
    # of millions of them would hold a worker for seconds. Refused one piece past the count.
    pieces = ANSWER_LIMIT // MIN_PIECE + 1
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\n \r\n" * pieces
    with Loopback() as server:
        server.get(MESSAGES_PATH, raw=answer + b"0\r\n\r\n", times=1)
        app = create_app(Settings(api_url=server.url, data_dir=str(tmp_path)))
        refused = call(app.test_client())
        server.get(MESSAGES_PATH, raw=answer[: -len(b"1\r\n \r\n")] + b"0\r\n\r\n")
        taken = call(app.test_client())
    assert refused.status_code == 502 and "pieces" in envelope(refused)["status_msg"]
    assert taken.status_code == 200


def test_a_keyed_publish_answered_past_the_cap_settles_as_unknown(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION, body=padded(ANSWER_LIMIT + 1))
    first = call(client, "publishMessage", PUBLISH, key="k-big")
    again = call(client, "publishMessage", PUBLISH, key="k-big")
    # The first answer and every replay agree: InstaMsg may have published.
    for answer in (first, again):
        assert answer.status_code == 502 and envelope(answer)["status_code"] == "OUTCOME_UNKNOWN"
    assert len(mocked.calls) == 1


def test_the_sandbox_adapter_answers_through_the_same_cap():
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield b" " * MIB

    app = Flask("big")
    app.add_url_rule("/big", "big", lambda: Response(endless(), mimetype="application/json"))
    session = requests.Session()
    session.mount(SANDBOX_URL + "/", SandboxAdapter(app))
    upstream = Upstream(session, SANDBOX_URL)
    with pytest.raises(UpstreamUnavailable, match="larger than 8 MiB"):
        upstream.send(UpstreamRequest("GET", "/big"))
    # The app was asked for no more than the cap and a chunk.
    assert len(produced) <= ANSWER_LIMIT // MIB + 1


# -- item 7: how deep an answer may nest ----------------------------------------------------


@pytest.mark.parametrize(
    "depth, expected",
    [(jsonx.MAX_DEPTH, 200), (jsonx.MAX_DEPTH + 1, 502), (600, 502), (1000, 502), (100_000, 502)],
)
@pytest.mark.parametrize("status", [200, 404, 500])
def test_an_answer_deeper_than_the_bound_is_a_502_on_every_path(
    client, mocked, depth, expected, status
):
    mocked.get(MESSAGES, status=status, body=nested(depth), content_type="application/json")
    answer = call(client)
    said = envelope(answer)
    if expected == 200 and status == 200:
        assert answer.status_code == 200
        return
    if expected == 200:  # an error answer within the bound keeps its own status
        assert answer.status_code == (404 if status == 404 else 502)
        assert said["status_code"] == "API_ERROR"
        return
    assert answer.status_code == 502, said
    assert said["status_code"] == "API_ERROR"
    assert f"nested more than {jsonx.MAX_DEPTH} levels deep" in said["status_msg"]
    assert said["upstream"] == {"status": status, "body": None}


@pytest.mark.parametrize("status", [200, 404])
def test_an_answer_with_text_no_writer_can_write_is_not_a_bug(client, mocked, status):
    # JSON's escapes allow a lone surrogate, which no UTF-8 writer can write back.
    mocked.get(MESSAGES, status=status, body=b'["\\udc80"]', content_type="application/json")
    answer = call(client)
    assert answer.status_code == (502 if status == 200 else 404), answer.json
    assert envelope(answer)["status_code"] == "API_ERROR"


def test_a_keyed_create_answered_too_deep_replays_the_same_502(client, mocked):
    # InstaMsg created the tenant and said so in a body too deep to pass on: a definite
    # answer (the call ran), kept for the key like any other API_ERROR, never a bug.
    tenant = {"accessToken": TOKEN, "name": "n", "maxClients": 1, "maxMessages": 1}
    mocked.post(INSTAMSG + "/api/v1/tenants", status=201, body=nested(1000))
    first = call(client, "createTenant", tenant, key="k-deep")
    again = call(client, "createTenant", tenant, key="k-deep")
    assert first.status_code == again.status_code == 502, first.json
    assert envelope(first)["status_code"] == envelope(again)["status_code"] == "API_ERROR"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(mocked.calls) == 1


def test_the_documents_state_the_bounds_the_code_has():
    for doc in ("README.md", "docs/operations.md"):
        text = (ROOT / doc).read_text()
        assert (
            f"over {ANSWER_LIMIT // MIB} MiB" in text or f"past {ANSWER_LIMIT // MIB} MiB" in text
        )
        assert f"more than {jsonx.MAX_DEPTH} levels deep" in text


# -- item 5: the deadline bounds a whole call ------------------------------------------------


def loopback_upstream(server, deadline=1.0, read_timeout=0.5, retries=3) -> Upstream:
    settings = Settings(api_url=server.url)
    policy = RetryPolicy(retries=retries, base=0.01, cap=0.02, deadline=deadline)
    return Upstream(upstream_session(settings), server.url, 0.5, read_timeout, policy)


@pytest.mark.slow
@pytest.mark.parametrize(
    "how",
    [{"drip": 0.2}, {"drip": 0.2, "drip_head": True}],
    ids=["the body drips", "the head drips"],
)
def test_a_dripping_answer_ends_at_the_deadline(how):
    # 20 bytes at 0.2 s each: never a read timeout (0.5 s), four times the deadline in all.
    with Loopback() as server:
        server.get(MESSAGES_PATH, body=b'{"ok": true}' + b" " * 8, **how)
        upstream = loopback_upstream(server)
        with pytest.raises(UpstreamTimeout, match="INSTAMSG_DEADLINE"):
            upstream.send(UpstreamRequest("GET", MESSAGES_PATH, repeatable=True))
        assert len(server.calls) == 1  # a timeout is not sent again


def test_a_failing_caller_check_stops_no_other_call():
    def broken():
        raise RuntimeError("the check itself failed")

    now = time.monotonic()
    with Watchdog(now + 60, broken) as lasting, Watchdog(now + 0.1) as due:
        wait_until(lambda: due.why is not None, 5)  # the watcher looks every WATCH_EVERY s
    assert (due.why, lasting.why) == ("slow", None)


@pytest.mark.slow
def test_retries_and_a_drip_together_end_at_the_deadline():
    with Loopback() as server:
        server.get(MESSAGES_PATH, status=503, times=1)
        server.get(MESSAGES_PATH, body=b"[]" + b" " * 18, drip=0.2)
        upstream = loopback_upstream(server)
        with pytest.raises(UpstreamTimeout):
            upstream.send(UpstreamRequest("GET", MESSAGES_PATH, repeatable=True))
        assert len(server.calls) == 2


@pytest.mark.slow
def test_a_publish_whose_answer_stalls_mid_body_is_not_taken_as_never_sent(tmp_path):
    # The head arrives, then the body stops for longer than the read timeout: the publish
    # reached InstaMsg, so its key must not be freed for a second publish.
    with Loopback() as server:
        server.post(MESSAGES_PATH, status=201, headers=LOCATION, body=b"{}   ", drip=1.0)
        app = create_app(
            Settings(api_url=server.url, read_timeout=0.3, deadline=10, data_dir=str(tmp_path))
        )
        client = app.test_client()
        first = call(client, "publishMessage", PUBLISH, key="k-stall")
        assert envelope(first)["status_code"] == "OUTCOME_UNKNOWN", first.json
        again = call(client, "publishMessage", PUBLISH, key="k-stall")
        assert envelope(again)["status_code"] == "OUTCOME_UNKNOWN"
        assert len(server.calls) == 1


@pytest.mark.slow
def test_a_block_call_through_the_app_ends_at_the_deadline_in_live_mode(tmp_path):
    with Loopback() as server:
        server.get(MESSAGES_PATH, body=b"[]" + b" " * 18, drip=0.2)
        app = create_app(
            Settings(api_url=server.url, read_timeout=0.5, deadline=1, data_dir=str(tmp_path))
        )
        answer = call(app.test_client())
    assert answer.status_code == 504, answer.json
    assert envelope(answer)["status_code"] == "UPSTREAM_TIMEOUT"
    assert "may have taken effect" in envelope(answer)["status_msg"]


@pytest.mark.slow
def test_a_managed_tokens_fetch_and_the_call_share_one_deadline(tmp_path):
    """The token's fetch and the block's own request each end within the deadline alone
    (0.7 s of drip against 1 s), not together: the call is one deadline in all."""
    with Loopback() as server:
        token = b'{"access_token": "tok-1", "expires_in": 600}'
        server.post("/oauth2/token", body=token, drip=0.7 / len(token))
        server.get(MESSAGES_PATH, body=b"[]" + b" " * 18, drip=0.7 / 20)
        app = create_app(
            Settings(api_url=server.url, read_timeout=0.5, deadline=1, data_dir=str(tmp_path))
        )
        managed = {"clientKey": "app-key", "clientSecret": "app-secret", **READ}
        del managed["accessToken"]
        answer = call(app.test_client(), args=managed)
        assert [c.request.url.split("?")[0] for c in server.calls] == [
            server.url + "/oauth2/token",
            server.url + MESSAGES_PATH,
        ]
    assert answer.status_code == 504, answer.json
    assert envelope(answer)["status_code"] == "UPSTREAM_TIMEOUT"


@pytest.mark.slow
@pytest.mark.parametrize("how", [{"drip": 0.25}, {"drip": 0.25, "drip_head": True}])
def test_a_downloaded_files_body_is_read_within_the_deadline(tmp_path, how):
    """downloadFile's base64 answer reads its body after the exchange: the deadline holds
    there too (a 60-byte file at a byte every 0.25 s answered 200 after 15 s with a 3 s
    deadline, found by the adversarial pass)."""
    with Loopback() as server:
        server.get(
            "/api/v1/tenants/t/clients/c/files/notes.txt",
            body=b"x" * 60,
            headers={"Content-Type": "text/plain"},
            **how,
        )
        app = create_app(
            Settings(api_url=server.url, read_timeout=1, deadline=1, data_dir=str(tmp_path))
        )
        answer = call(app.test_client(), "downloadFile", {**READ, "filename": "notes.txt"})
    assert answer.status_code == 504, answer.json
    assert envelope(answer)["status_code"] == "UPSTREAM_TIMEOUT"


@pytest.mark.slow
def test_an_endless_answer_is_cut_off_at_the_cap_in_live_mode(tmp_path):
    with Loopback() as server:
        server.get(MESSAGES_PATH, body=b" " * 65536, endless=1 << 40)
        app = create_app(Settings(api_url=server.url, deadline=30, data_dir=str(tmp_path)))
        answer = call(app.test_client())
        server.wait_for_closed(1)  # the connector hung up on it
    assert answer.status_code == 502 and envelope(answer)["status_code"] == "UPSTREAM_UNAVAILABLE"


@pytest.mark.slow
def test_a_worker_reading_an_endless_answer_stops_at_the_cap(tmp_path):
    with Loopback() as server:
        server.get(MESSAGES_PATH, body=b" " * 65536, endless=1 << 40)
        with faultkit.connector(tmp_path, server, INSTAMSG_DEADLINE="30") as (base, _):
            answer = requests.post(base + "/blocks/getMessages", json=READ, timeout=60)
            server.wait_for_closed(1)
    assert answer.status_code == 502
    assert answer.json()["contextWrites"]["to"]["status_code"] == "UPSTREAM_UNAVAILABLE"
