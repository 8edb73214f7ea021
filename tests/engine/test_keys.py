"""Issue 15's rules that need no server process: what an Idempotency-Key keeps, frees or
settles; SQLite faults; rate-limit identity; malformed input; numbers; redaction. The slow,
multi-process proofs are in tests/e2e/test_faults.py and tests/e2e/test_fault_injection.py."""

import sqlite3

import pytest
import requests

from connector.config import Settings
from connector.engine.idempotency_keys import (
    MAX_KEPT_BYTES,
    Lifetimes,
    SendWatch,
    bounded_answer,
)
from connector.state.sqlite_store import SQLiteIdempotencyStore
from connector.web.body import MAX_ARGS
from tests.support.upstream import INSTAMSG, KEYED_PUBLISH, LIVE_APP, TOKEN, VALVE, publish

T = "/api/v1/tenants/t/clients/c"
MESSAGES = INSTAMSG + T + "/messages"
TOKEN_URL = INSTAMSG + "/oauth2/token"
LOCATION = {"Location": T + "/messages/m-1"}
PUBLISH = {**VALVE, "payload": "open"}


def managed_publish(client, key):
    return publish(client, key, {**LIVE_APP, **PUBLISH})


def code(answer):
    return answer.json["contextWrites"]["to"].get("status_code")


def publishes(mocked):
    return [c for c in mocked.calls if c.request.method == "POST" and "/messages" in c.request.url]


# -- 4. nothing ran: the key is freed, so the envelope's "retryable" advice works ----------


def test_an_upstream_429_frees_the_key_and_the_retry_runs(client, mocked):
    # two answers for one URL: responses serves the first once, then the second
    mocked.post(MESSAGES, status=429, json={"message": "slow down"})
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    first = publish(client, "k-429")
    assert first.status_code == 429 and code(first) == "API_ERROR"
    assert first.json["contextWrites"]["to"]["retryable"] is True
    again = publish(client, "k-429")
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert publish(client, "k-429").headers["Idempotent-Replayed"] == "true"
    assert len(publishes(mocked)) == 2  # the 429 ran nothing; the message exists once


def test_a_failed_managed_token_fetch_frees_the_key(client, mocked):
    # four 503s: the first try and its three retries; nothing reached the messages endpoint
    for _ in range(4):
        mocked.post(TOKEN_URL, status=503, json={"message": "down"})
    mocked.post(TOKEN_URL, json={"access_token": "tok-fresh", "expires_in": 3600})
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    first = managed_publish(client, "k-token")
    assert first.status_code == 502 and first.json["contextWrites"]["to"]["retryable"] is True
    again = managed_publish(client, "k-token")
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert len(publishes(mocked)) == 1


def test_an_upstream_timeout_after_sending_is_settled_as_outcome_unknown(client, mocked):
    # sent, then no answer in time: what requests raises when the read timeout passes
    mocked.post(MESSAGES, body=requests.exceptions.ReadTimeout("read timed out"))
    first = publish(client, "k-slow")
    assert first.status_code == 502 and code(first) == "OUTCOME_UNKNOWN"
    body = first.json["contextWrites"]["to"]
    assert body["retryable"] is False and "NEW" in body["status_msg"]
    again = publish(client, "k-slow")
    assert again.status_code == 502 and code(again) == "OUTCOME_UNKNOWN"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(publishes(mocked)) == 1


def test_the_rapidapi_twin_answers_outcome_unknown_with_200(client, mocked):
    mocked.post(MESSAGES, body=requests.exceptions.ReadTimeout("read timed out"))
    for _ in range(2):
        answer = client.post(
            "/api/InstaMsg/publishMessage",
            json=KEYED_PUBLISH,
            headers={"Idempotency-Key": "k-rapid"},
        )
        assert answer.status_code == 200 and code(answer) == "OUTCOME_UNKNOWN"
    assert len(publishes(mocked)) == 1


def test_an_upstream_5xx_after_sending_is_outcome_unknown_not_a_kept_retryable_error(
    client, mocked
):
    mocked.post(MESSAGES, status=500, json={"message": "boom"})
    first, again = publish(client, "k-500"), publish(client, "k-500")
    assert code(first) == code(again) == "OUTCOME_UNKNOWN"
    assert len(publishes(mocked)) == 1


def test_a_refusal_from_instamsg_is_kept_as_is(client, mocked):
    mocked.post(MESSAGES, status=403, json={"message": "topic not permitted"})
    first, again = publish(client, "k-403"), publish(client, "k-403")
    assert first.status_code == again.status_code == 403 and again.json == first.json
    assert len(publishes(mocked)) == 1


# -- reads ignore the key; kept answers are bounded -----------------------------------------


def test_a_read_ignores_its_key(client, mocked):
    mocked.get(MESSAGES, json=[])
    for _ in range(2):
        answer = client.post(
            "/blocks/getMessages",
            json={"accessToken": TOKEN, "tenantId": "t", "clientId": "c"},
            headers={"Idempotency-Key": "k-read"},
        )
        assert answer.status_code == 200 and "Idempotent-Replayed" not in answer.headers
    store = client.application.extensions["instamsg"].idempotency
    assert store.db.one("SELECT COUNT(*) AS n FROM idempotency")["n"] == 0


def test_a_kept_answer_over_the_limit_keeps_its_status_and_says_so():
    body = b"x" * (MAX_KEPT_BYTES + 1)
    status, headers, kept = bounded_answer(200, [["Content-Type", "text/plain"]], body)
    assert status == 200 and len(kept) < 1024 and b"larger than" in kept
    assert ["Content-Type", "application/json"] in headers
    assert bounded_answer(201, [], b"{}") == (201, [], b"{}")


# -- the lease covers the call; a call never starts sending past send_by -----------------------


def test_the_lease_covers_token_file_and_upstream_from_the_same_settings():
    settings = Settings(connect_timeout=5, read_timeout=30, deadline=60)
    life = Lifetimes.of(settings)
    token_fetch = settings.deadline + 2 * (settings.connect_timeout + settings.read_timeout)
    one_send = settings.deadline + settings.connect_timeout + settings.read_timeout
    assert life.lease >= token_fetch + one_send + settings.deadline  # file fetch too
    assert life.send_by + life.upstream < life.lease


def test_a_watch_refuses_to_send_past_its_moment_and_says_nothing_was_sent():
    watch = SendWatch(send_by=0.0)  # long past
    with pytest.raises(Exception) as caught:
        watch.before()
    assert caught.value.nothing_sent and not watch.may_have_sent
    watch = SendWatch()
    watch.before()
    assert watch.may_have_sent  # an attempt that never ended counts as sent
    watch.after(reached=False)
    assert not watch.may_have_sent


# -- 6. SQLite faults answer like Redis faults: 503, nothing sent ---------------------------


def sqlite_store(client) -> SQLiteIdempotencyStore:
    return client.application.extensions["instamsg"].idempotency


def test_a_read_only_sqlite_file_refuses_new_keys_with_503_and_still_replays(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    assert publish(client, "k-done").status_code == 200
    store = sqlite_store(client)
    store.db.conn.execute("PRAGMA query_only=ON")  # root ignores file modes
    try:
        refused = publish(client, "k-new")
        assert refused.status_code == 503 and code(refused) == "IDEMPOTENCY_UNAVAILABLE"
        assert refused.json["contextWrites"]["to"]["retryable"] is True
        assert refused.headers["Retry-After"]
        replay = publish(client, "k-done")
        assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    finally:
        store.db.conn.execute("PRAGMA query_only=OFF")
    assert len(publishes(mocked)) == 1


def test_a_full_sqlite_file_refuses_new_keys_with_503(client, mocked):
    store = sqlite_store(client)
    assert store.check() is None
    pages = store.db.one("PRAGMA page_count")[0]
    store.db.conn.execute(f"PRAGMA max_page_count={pages + 4}")  # a small disk...
    for size in (1000, 100, 1):  # ...filled up, to the last byte a row could use
        with pytest.raises(sqlite3.OperationalError, match="full"):
            for n in range(10000):
                store.db.conn.execute(
                    "INSERT INTO idempotency (scope, key, block, request, state, started_at, "
                    "expires_at) VALUES ('junk', ?, '', ?, 'done', 0, 9e99)",
                    (f"{size}-{n}", "z" * size),
                )
    refused = publish(client, "k-full")
    assert refused.status_code == 503 and code(refused) == "IDEMPOTENCY_UNAVAILABLE"
    assert publishes(mocked) == []


def test_an_answer_that_cannot_be_kept_is_outcome_unknown_never_200(client, mocked, monkeypatch):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    store = sqlite_store(client)
    real_transaction = store.db.transaction
    calls = {"n": 0}

    def failing_after_claim():
        calls["n"] += 1
        if calls["n"] > 1:  # the claim passes; keeping the answer fails (disk full)
            raise sqlite3.OperationalError("database or disk is full")
        return real_transaction()

    monkeypatch.setattr(store.db, "transaction", failing_after_claim)
    first = publish(client, "k-lost")
    assert first.status_code == 502 and code(first) == "OUTCOME_UNKNOWN"
    monkeypatch.undo()
    again = publish(client, "k-lost")
    assert again.status_code == 409  # held until its lease ends; then OUTCOME_UNKNOWN
    assert len(publishes(mocked)) == 1


# -- 9. rate limits count a checked identity only ------------------------------------------


def test_made_up_api_keys_behind_the_rapidapi_secret_get_no_allowance_of_their_own(
    settings, mocked
):
    from dataclasses import replace

    from app import create_app

    mocked.get(INSTAMSG + "/api/v1/tenants/t-1", json={"id": "t-1"})
    checked = replace(
        settings,
        api_keys=("real-key",),
        rapidapi_proxy_secret="proxy-s3cret",
        rate_limit="5/minute",
    )
    client = create_app(checked).test_client()
    codes = [
        code(
            client.post(
                "/api/InstaMsg/getSingleTenant",
                json={"accessToken": TOKEN, "id": "t-1"},
                headers={"X-RapidAPI-Proxy-Secret": "proxy-s3cret", "X-API-Key": f"made-up-{n}"},
            )
        )
        for n in range(8)
    ]
    assert codes == [None] * 5 + ["RATE_LIMITED"] * 3


# -- 10. malformed input answers 400 with an envelope, never a 500 --------------------------

SURROGATE_BODIES = {
    "a lone surrogate as an argument name": b'{"\\udc80": "x"}',
    "a lone surrogate in a value": b'{"accessToken": "tok", "payload": "\\udc80"}',
    "nested 1000 levels": b'{"payload": ' + b"[" * 1000 + b"]" * 1000 + b"}",
}


@pytest.mark.parametrize("body", SURROGATE_BODIES.values(), ids=SURROGATE_BODIES.keys())
@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
@pytest.mark.parametrize(
    ("path", "status"), [("/blocks/publishMessage", 400), ("/api/InstaMsg/publishMessage", 200)]
)
def test_malformed_json_is_answered_400_with_an_envelope(
    client, nothing_sent, body, keyed, path, status
):
    headers = {"Content-Type": "application/json"}
    if keyed:
        headers["Idempotency-Key"] = "k-malformed"
    answer = client.post(path, data=body, headers=headers)
    assert answer.status_code == status
    assert code(answer) == "INVALID_REQUEST"


def test_deep_client_config_is_answered_400(client, nothing_sent):
    body = b'{"accessToken": "tok", "tenantId": "t", "clientId": "c", "config": '
    body += b'{"a":' * 990 + b"1" + b"}" * 990 + b"}"
    answer = client.post(
        "/blocks/updateClientConfig", data=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and code(answer) == "INVALID_REQUEST"


def test_a_body_of_too_many_arguments_is_refused_before_any_work(client, nothing_sent):
    answer = client.post("/blocks/publishMessage", json={f"k{n}": 1 for n in range(MAX_ARGS + 1)})
    assert answer.status_code == 400 and f"{MAX_ARGS + 1} arguments" in code_msg(answer)


def code_msg(answer):
    return answer.json["contextWrites"]["to"]["status_msg"]


# -- 11. numbers InstaMsg can hold, in ASCII digits; redaction of secrets, not of words ----


@pytest.mark.parametrize(
    "given", ["99999999999999999999999999999", 99999999999999999999999999999, "١٠", "10\u0661"]
)
def test_a_count_must_be_a_whole_number_instamsg_can_hold_in_ascii_digits(
    client, nothing_sent, given
):
    answer = client.post(
        "/blocks/createTenant",
        json={"accessToken": TOKEN, "name": "Farm", "maxClients": given, "maxMessages": 5},
    )
    assert answer.status_code == 422 and code(answer) == "INVALID_FIELDS"
    assert answer.json["contextWrites"]["to"]["fields"] == ["maxClients"]


def test_an_ordinary_word_equal_to_a_short_secret_is_not_redacted(client, mocked):
    mocked.post(TOKEN_URL, status=401, json={"message": "wrong client secret"})
    answer = client.post(
        "/blocks/getAccessToken", json={"clientKey": "demo-key", "clientSecret": "wrong"}
    )
    assert "wrong client secret" in code_msg(answer)


REDACTION = [
    # (the secret, InstaMsg's text, what the caller reads)
    ("wrong", "wrong client secret", "wrong client secret"),
    ("s3cr3t", "bad secret s3cr3t given", "bad secret [redacted] given"),
    ("s3cr3t", "bad secret xs3cr3tx given", "bad secret xs3cr3tx given"),
    ("tok-3f9a8c7e9b01", "token=tok-3f9a8c7e9b01&x", "token=[redacted]&x"),
    ("tok-3f9a8c7e9b01", "abctok-3f9a8c7e9b01def", "abc[redacted]def"),
    ("contextWrites", "bad token contextWrites", "bad token [redacted]"),
]


@pytest.mark.parametrize(("secret", "text", "shown"), REDACTION)
def test_the_redaction_rule(secret, text, shown):
    from connector.engine.redaction import scrub

    assert scrub(text, [secret]) == shown
