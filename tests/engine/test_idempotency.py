"""Idempotency-Key: one run per key, replayed answers, refused reuse, shared by workers."""

import threading

import pytest
import requests

from app import create_app
from connector.config import Settings
from connector.engine.idempotency_keys import MAX_KEY
from tests.support.servers import gunicorn
from tests.support.upstream import APP, INSTAMSG, KEYED_PUBLISH, TOKEN, VALVE, publish

MESSAGES_PATH = "/api/v1/tenants/t/clients/c/messages"
MESSAGES = INSTAMSG + MESSAGES_PATH
LOCATION = {"Location": "/api/v1/tenants/t/clients/c/messages/m-1"}


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
    other_args = publish(client, "k-2", {**KEYED_PUBLISH, "payload": "close"})
    other_block = client.post(
        "/blocks/releaseMessage",
        json={
            **{k: KEYED_PUBLISH[k] for k in ("accessToken", "tenantId", "clientId")},
            "messageId": 1,
        },
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


def test_validation_failures_are_not_kept(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    bad = publish(client, "k-5", {**KEYED_PUBLISH, "qos": 9})
    assert bad.status_code == 422 and envelope(bad)["status_code"] == "INVALID_FIELDS"
    good = publish(client, "k-5")
    assert good.status_code == 200 and "Idempotent-Replayed" not in good.headers


def test_a_key_holds_across_renewed_credentials(client, mocked):
    """A flow that renewed its access token through the connector (or switched to managed
    tokens) before retrying finds its key: credentials are who calls InstaMsg, not what is
    asked of it."""
    for token in (TOKEN, "a-renewed-token"):
        mocked.post(INSTAMSG + "/oauth2/token", json={"access_token": token, "expires_in": 60})
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    tokens = [
        envelope(client.post("/blocks/getAccessToken", json=APP))["access_token"] for _ in range(2)
    ]
    assert tokens == [TOKEN, "a-renewed-token"]
    first = publish(client, "k-6")
    renewed = publish(client, "k-6", {**KEYED_PUBLISH, "accessToken": "a-renewed-token"})
    managed = publish(
        client, "k-6", {**{k: v for k, v in KEYED_PUBLISH.items() if k != "accessToken"}, **APP}
    )
    for again in (renewed, managed):
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json == first.json
    assert len([c for c in mocked.calls if c.request.url.startswith(MESSAGES)]) == 1


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
            json=KEYED_PUBLISH,
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
    answers = [
        client.post("/blocks/getAccessToken", json=APP, headers={"Idempotency-Key": "k-tok"})
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


@pytest.mark.parametrize("key", ["", "k" * (MAX_KEY + 1)])
@pytest.mark.parametrize("block", ["publishMessage", "getAccessToken", "getMessages"])
def test_a_key_must_be_1_to_max_key_characters_on_every_block(client, key, block, nothing_sent):
    """Blocks that ignore keys (reads, getAccessToken) refuse a malformed one all the same."""
    args = (
        {"clientKey": "demo-key", "clientSecret": "s"}
        if block == "getAccessToken"
        else KEYED_PUBLISH
    )
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
                    json=KEYED_PUBLISH,
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
            base + "/blocks/publishMessage",
            json=KEYED_PUBLISH,
            headers={"Idempotency-Key": "shared-1"},
        )
    statuses = sorted(r.status_code for r in results)
    assert statuses in ([200, 409], [200, 200])
    assert len([c for c in loopback.calls if c.request.method == "POST"]) == 1
    assert replay.headers["Idempotent-Replayed"] == "true"


# -- whose answer a key keeps (issue 21, items 2 and 3) ------------------------------------

APP_A = {"clientKey": "app-a", "clientSecret": "secret-a"}
APP_B = {"clientKey": "app-b", "clientSecret": "secret-b"}
VALVE_TOPIC = {k: VALVE[k] for k in ("id", "type", "topic", "qos")}


class Account:
    """A sandbox with two InstaMsg apps, called over the HTTP face of one app (one engine)."""

    def __init__(self, tmp_path, api_keys=()):
        apps = {APP_A["clientKey"]: APP_A["clientSecret"], APP_B["clientKey"]: "secret-b"}
        settings = Settings(
            sandbox=True, sandbox_apps=apps, data_dir=str(tmp_path), api_keys=api_keys
        )
        self.app = create_app(settings)
        self.engine = self.app.extensions["instamsg"]
        self.http = self.app.test_client()

    def post(self, block, args, key=None, api_key=None):
        headers = {"Idempotency-Key": key} if key else {}
        if api_key:
            headers["X-API-Key"] = api_key
        return self.http.post(f"/blocks/{block}", json={"args": args}, headers=headers)

    def token(self, app, api_key=None):
        return envelope(self.post("getAccessToken", app, api_key=api_key))["access_token"]

    def device(self, token, api_key=None):
        """A tenant and a device client of the token's app: {tenantId, clientId}."""
        tenant = self.post(
            "createTenant",
            {"accessToken": token, "name": "Farm", "maxClients": 2, "maxMessages": 5},
            api_key=api_key,
        )
        args = {"accessToken": token, "tenantId": envelope(tenant)["id"]}
        created = self.post(
            "createClient",
            {
                **args,
                "type": "device",
                "name": "pump",
                "provisioningId": "p-1",
                "pubTopics": ["valves"],
            },
            api_key=api_key,
        )
        return {"tenantId": args["tenantId"], "clientId": envelope(created)["id"]}


def test_an_anonymous_key_replays_only_to_the_app_that_made_the_call(tmp_path):
    """Without CONNECTOR_API_KEYS every caller shares one scope: app B (or anyone with a
    made-up token) sending app A's key for A's client is refused, never given A's new
    device auth token; A itself, with a renewed token or its key and secret, is replayed."""
    account = Account(tmp_path)
    token_a = account.token(APP_A)
    client = account.device(token_a)
    first = account.post("updateClientAuthToken", {"accessToken": token_a, **client}, "k-a")
    assert first.status_code == 200
    secret = envelope(first)["auth_token"]

    strangers = [
        {"accessToken": account.token(APP_B)},
        {"accessToken": "made-up-token-0123456789"},
        APP_B,
        {"clientKey": APP_A["clientKey"], "clientSecret": "not-a-secret"},
    ]
    for credentials in strangers:
        answer = account.post("updateClientAuthToken", {**credentials, **client}, "k-a")
        assert answer.status_code == 422, credentials
        assert envelope(answer)["status_code"] == "IDEMPOTENCY_KEY_REUSED"
        assert "another InstaMsg app" in envelope(answer)["status_msg"]
        assert secret not in answer.get_data(as_text=True)
        assert "Idempotent-Replayed" not in answer.headers
    # B cannot read A's client directly either: the refusal told it nothing it could not know
    direct = account.post("getClientAuthToken", {"accessToken": account.token(APP_B), **client})
    assert direct.status_code == 404

    for credentials in ({"accessToken": account.token(APP_A)}, APP_A):
        again = account.post("updateClientAuthToken", {**credentials, **client}, "k-a")
        assert again.headers["Idempotent-Replayed"] == "true", credentials
        assert envelope(again)["auth_token"] == secret


def test_an_invalidated_token_no_longer_stands_for_its_app(tmp_path):
    """After invalidateAccessToken a token can make no call: its app's kept answers are
    refused to it, never replayed (found by the adversarial pass), and still replayed to
    the app's own key and secret."""
    account = Account(tmp_path)
    token = account.token(APP_A)
    client = account.device(token)
    first = account.post("updateClientAuthToken", {"accessToken": token, **client}, "k-inv")
    assert first.status_code == 200
    ended = account.post("invalidateAccessToken", {**APP_A, "token": token})
    assert ended.status_code == 200
    again = account.post("updateClientAuthToken", {"accessToken": token, **client}, "k-inv")
    assert again.status_code == 422 and "Idempotent-Replayed" not in again.headers
    assert envelope(first)["auth_token"] not in again.get_data(as_text=True)
    owner = account.post("updateClientAuthToken", {**APP_A, **client}, "k-inv")
    assert owner.headers["Idempotent-Replayed"] == "true"


def test_credentials_given_as_numbers_are_the_app_they_name(tmp_path):
    """Text arguments take JSON numbers: an app whose key and secret are digits, sent as
    numbers, owns its keys like any other; a stranger sending numbers is refused (found by
    the adversarial pass: numbers once made every such caller one shared nobody)."""
    settings = Settings(sandbox=True, sandbox_apps={"12345": "67890"}, data_dir=str(tmp_path))
    http = create_app(settings).test_client()

    def post(block, args, key=None):
        headers = {"Idempotency-Key": key} if key else {}
        return http.post(f"/blocks/{block}", json={"args": args}, headers=headers)

    app = {"clientKey": 12345, "clientSecret": 67890}
    tenant = envelope(post("createTenant", {**app, "name": "F", "maxClients": 1, "maxMessages": 1}))
    created = post(
        "createClient",
        {**app, "tenantId": tenant["id"], "type": "device", "name": "d", "provisioningId": "p"},
    )
    client = {"tenantId": tenant["id"], "clientId": envelope(created)["id"]}
    first = post("updateClientAuthToken", {**app, **client}, "k-n")
    assert first.status_code == 200
    for stranger in ({"accessToken": 1}, {"clientKey": 1, "clientSecret": 2}):
        answer = post("updateClientAuthToken", {**stranger, **client}, "k-n")
        assert answer.status_code == 422, stranger
        assert envelope(first)["auth_token"] not in answer.get_data(as_text=True)
    again = post(
        "updateClientAuthToken", {"clientKey": "12345", "clientSecret": "67890", **client}, "k-n"
    )
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_token_the_connector_did_not_hand_out_keeps_its_keys_to_itself(client, mocked):
    """A token from elsewhere cannot be tied to an app: the same token replays, another
    token (renewed outside the connector) is refused rather than published again."""
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    first = publish(client, "k-9")
    same = publish(client, "k-9")
    other = publish(client, "k-9", {**KEYED_PUBLISH, "accessToken": "tok-from-elsewhere"})
    assert same.headers["Idempotent-Replayed"] == "true" and same.json == first.json
    assert other.status_code == 422 and envelope(other)["status_code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(mocked.calls) == 1


def test_an_api_key_owns_its_keys_on_every_face(tmp_path):
    """An MCP tool call run in process with --api-key is that key's caller, as over HTTP:
    the same Idempotency-Key publishes once across the two faces, and another API key's
    caller never gets the kept answer."""
    from connector.mcp import runners

    account = Account(tmp_path, api_keys=("key-a", "key-b"))
    token = account.token(APP_A, api_key="key-a")
    client = account.device(token, api_key="key-a")
    publish_args = {**client, "accessToken": token, **VALVE_TOPIC, "payload": "on"}

    over_mcp, replayed = runners.run_in_process(
        account.engine, "publishMessage", publish_args, "k-mcp", "key-a"
    )
    assert over_mcp["callback"] == "success" and not replayed
    over_http = account.post("publishMessage", publish_args, "k-mcp", api_key="key-a")
    assert over_http.headers["Idempotent-Replayed"] == "true"
    assert over_http.json == over_mcp

    made_up = {**publish_args, "accessToken": "made-up-token-0123456789"}
    as_b, replayed = runners.run_in_process(
        account.engine, "publishMessage", made_up, "k-mcp", "key-b"
    )
    assert not replayed and as_b["callback"] == "error"
    assert as_b["contextWrites"]["to"]["status_code"] == "API_ERROR"  # InstaMsg's 401

    messages = account.post("getMessages", {**client, "accessToken": token}, api_key="key-a")
    assert len(envelope(messages)) == 1


def test_a_key_matches_what_was_asked_whatever_its_spelling(client, mocked):
    """A retry that sends the same call as a form (all text) or with a default spelled out
    is the same call: it replays."""
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    first = publish(client, "k-spelling")
    as_form = client.post(
        "/blocks/publishMessage",
        data={k: str(v) for k, v in KEYED_PUBLISH.items()},
        headers={"Idempotency-Key": "k-spelling"},
    )
    with_default = publish(client, "k-spelling", {**KEYED_PUBLISH, "save": True})
    for again in (as_form, with_default):
        assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert len(mocked.calls) == 1
