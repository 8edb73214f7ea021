"""Idempotency-Key: one run per key, replayed answers, refused reuse, shared by workers."""

import threading

import pytest
import requests

from app import create_app
from connector.config import Settings
from tests.support.servers import gunicorn
from tests.support.upstream import INSTAMSG, TOKEN, VALVE

MESSAGES_PATH = "/api/v1/tenants/t/clients/c/messages"
MESSAGES = INSTAMSG + MESSAGES_PATH
PUBLISH = {"accessToken": TOKEN, **VALVE, "payload": "open"}
LOCATION = {"Location": "/api/v1/tenants/t/clients/c/messages/m-1"}


def publish(client, key, args=PUBLISH, path="/blocks/publishMessage"):
    return client.post(path, json=args, headers={"Idempotency-Key": key})


def envelope(answer):
    return answer.json["contextWrites"]["to"]


def test_a_repeated_call_is_replayed_without_calling_upstream(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    first = publish(client, "k-1")
    again = publish(client, "k-1")
    assert first.status_code == again.status_code == 200
    assert (
        again.json
        == first.json
        == {"callback": "success", "contextWrites": {"to": {"messageId": "m-1"}}}
    )
    assert (
        again.headers["Idempotent-Replayed"] == "true"
        and "Idempotent-Replayed" not in first.headers
    )
    assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    assert len(mocked.calls) == 1


def test_the_same_key_with_other_arguments_or_block_is_refused(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    publish(client, "k-2")
    other_args = publish(client, "k-2", {**PUBLISH, "payload": "close"})
    other_block = client.post(
        "/blocks/releaseMessage",
        json={**{k: PUBLISH[k] for k in ("accessToken", "tenantId", "clientId")}, "messageId": 1},
        headers={"Idempotency-Key": "k-2"},
    )
    for answer in (other_args, other_block):
        assert answer.status_code == 422
        assert envelope(answer)["status_code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(mocked.calls) == 1


def test_a_key_still_running_answers_in_use(client, mocked):
    arrived, held = threading.Event(), threading.Event()

    def held_publish(request):
        arrived.set()
        assert held.wait(10), "the test never let the first call go"
        return 201, LOCATION, ""

    mocked.add_callback("POST", MESSAGES, callback=held_publish)
    app = client.application
    answers = []

    def first():
        answers.append(publish(app.test_client(), "k-3"))

    thread = threading.Thread(target=first)
    thread.start()
    assert arrived.wait(10)  # the first call is at InstaMsg, held there
    second = publish(client, "k-3")
    held.set()
    thread.join()
    assert second.status_code == 409 and envelope(second)["status_code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert envelope(second)["retryable"] is True
    assert answers[0].status_code == 200 and len(mocked.calls) == 1
    assert publish(client, "k-3").headers["Idempotent-Replayed"] == "true"


def test_errors_from_upstream_are_kept_too(client, mocked):
    mocked.post(MESSAGES, status=403, json={"message": "topic not permitted"})
    first = publish(client, "k-4")
    again = publish(client, "k-4")
    assert first.status_code == again.status_code == 403
    assert again.json == first.json and len(mocked.calls) == 1


def test_validation_failures_are_not_kept(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    bad = publish(client, "k-5", {**PUBLISH, "qos": 9})
    assert bad.status_code == 422 and envelope(bad)["status_code"] == "INVALID_FIELDS"
    good = publish(client, "k-5")
    assert good.status_code == 200 and "Idempotent-Replayed" not in good.headers


def test_a_key_holds_across_renewed_credentials(client, mocked):
    """A flow that renewed its access token (or switched to managed tokens) before retrying
    finds its key: credentials are who calls InstaMsg, not what is asked of it."""
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    first = publish(client, "k-6")
    renewed = publish(client, "k-6", {**PUBLISH, "accessToken": "a-renewed-token"})
    assert renewed.status_code == 200 and renewed.headers["Idempotent-Replayed"] == "true"
    assert renewed.json == first.json and len(mocked.calls) == 1


def test_keys_belong_to_the_connectors_caller(tmp_path, mocked):
    """With CONNECTOR_API_KEYS, each key holder has keys of its own."""
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    app = create_app(
        Settings(api_url=INSTAMSG, data_dir=str(tmp_path), api_keys=("ak-one", "ak-two"))
    )
    client = app.test_client()
    answers = [
        client.post(
            "/blocks/publishMessage",
            json=PUBLISH,
            headers={"Idempotency-Key": "k-shared", "X-API-Key": holder},
        )
        for holder in ("ak-one", "ak-two", "ak-one")
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None, None, "true"]
    assert len(mocked.calls) == 2


def test_get_access_token_ignores_keys(client, mocked):
    """A kept token would be replayed after it expired: asking again is harmless anyway."""
    for token in ("tok-first", "tok-second"):
        mocked.post(INSTAMSG + "/oauth2/token", json={"access_token": token, "expires_in": 60})
    args = {"clientKey": "demo-key", "clientSecret": "demo-secret"}
    answers = [
        client.post("/blocks/getAccessToken", json=args, headers={"Idempotency-Key": "k-tok"})
        for _ in range(2)
    ]
    assert [a.json["contextWrites"]["to"]["access_token"] for a in answers] == [
        "tok-first",
        "tok-second",
    ]
    assert all("Idempotent-Replayed" not in a.headers for a in answers)


def test_kept_answers_expire(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    publish(client, "k-7")
    store = client.application.extensions["instamsg"].idempotency
    store.clock = lambda: __import__("time").time() + 24 * 3600 + 1
    again = publish(client, "k-7")
    assert "Idempotent-Replayed" not in again.headers and len(mocked.calls) == 2


@pytest.mark.parametrize("key", ["", "k" * 256])
@pytest.mark.parametrize("block", ["publishMessage", "getAccessToken", "getMessages"])
def test_a_key_must_be_1_to_255_characters_on_every_block(client, key, block, nothing_sent):
    """Blocks that ignore keys (reads, getAccessToken) refuse a malformed one all the same."""
    args = {"clientKey": "demo-key", "clientSecret": "s"} if block == "getAccessToken" else PUBLISH
    answer = publish(client, key, args, path=f"/blocks/{block}")
    assert answer.status_code == 400 and envelope(answer)["status_code"] == "INVALID_REQUEST"


def test_the_rapidapi_route_replays_too(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    first = publish(client, "k-8", path="/api/InstaMsg/publishMessage")
    again = publish(client, "k-8", path="/api/InstaMsg/publishMessage")
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.slow
def test_two_workers_one_key_one_publish(tmp_path, loopback):
    """Two concurrent calls with one key against gunicorn with two workers: exactly one
    upstream publish; the other call answers 409 (still running) or replays the first."""
    loopback.post(MESSAGES_PATH, status=201, headers=LOCATION, delay=0.5)
    env = {
        "INSTAMSG_SANDBOX": "0",
        "INSTAMSG_API_URL": loopback.url,
        "INSTAMSG_DATA_DIR": str(tmp_path),
    }
    with gunicorn(env, workers=2) as (base, _):
        results = []

        def call():
            results.append(
                requests.post(
                    base + "/blocks/publishMessage",
                    json=PUBLISH,
                    headers={"Idempotency-Key": "shared-1", "Connection": "close"},
                    timeout=10,
                )
            )

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        replay = requests.post(
            base + "/blocks/publishMessage", json=PUBLISH, headers={"Idempotency-Key": "shared-1"}
        )
    statuses = sorted(r.status_code for r in results)
    assert statuses in ([200, 409], [200, 200])
    assert len([c for c in loopback.calls if c.request.method == "POST"]) == 1
    assert replay.headers["Idempotent-Replayed"] == "true"
