"""Managed tokens: clientKey and clientSecret in place of accessToken."""

import base64
import json
import threading

import pytest

from app import create_app
from sandbox.store import Store
from tests.support.upstream import APP, INSTAMSG

BASIC = "Basic " + base64.b64encode(f"{APP['clientKey']}:{APP['clientSecret']}".encode()).decode()
TOKEN_URL = INSTAMSG + "/oauth2/token"
TENANT = INSTAMSG + "/api/v1/tenants/t-1"


def envelope(answer):
    return answer.json["contextWrites"]["to"]


def token_reply(token, expires_in=3600, **kw):
    return {"json": {"access_token": token, "token_type": "bearer", "expires_in": expires_in}, **kw}


def bearer_of(call):
    return call.request.headers["Authorization"]


def test_the_connector_gets_a_token_and_keeps_it(client, mocked):
    mocked.post(TOKEN_URL, **token_reply("managed-1"))
    mocked.get(TENANT, json={"id": "t-1"})
    for _ in range(3):
        answer = client.post("/blocks/getSingleTenant", json={**APP, "id": "t-1"})
        assert answer.status_code == 200 and envelope(answer) == {"id": "t-1"}
    token_calls = [c for c in mocked.calls if "/oauth2/" in c.request.url]
    assert len(token_calls) == 1 and token_calls[0].request.headers["Authorization"] == BASIC
    assert [bearer_of(c) for c in mocked.calls[1:]] == ["Bearer managed-1"] * 3


def test_a_token_is_renewed_shortly_before_it_expires(client, mocked_in_order):
    now = [1000.0]
    client.application.extensions["instamsg"].tokens.clock = lambda: now[0]
    mocked_in_order.post(TOKEN_URL, **token_reply("first", expires_in=600))
    mocked_in_order.get(TENANT, json={})
    mocked_in_order.get(TENANT, json={})
    mocked_in_order.post(TOKEN_URL, **token_reply("second", expires_in=600))
    mocked_in_order.get(TENANT, json={})
    client.post("/blocks/getSingleTenant", json={**APP, "id": "t-1"})
    now[0] += 530  # 600 s life, renewed 60 s before its end: still good
    client.post("/blocks/getSingleTenant", json={**APP, "id": "t-1"})
    now[0] += 20  # past 540 s: renewed
    client.post("/blocks/getSingleTenant", json={**APP, "id": "t-1"})
    gets = [bearer_of(c) for c in mocked_in_order.calls if "/tenants/" in c.request.url]
    assert gets == ["Bearer first", "Bearer first", "Bearer second"]


def test_a_401_renews_once_and_sends_once_more(client, mocked_in_order):
    mocked_in_order.post(TOKEN_URL, **token_reply("revoked"))
    mocked_in_order.post(INSTAMSG + "/api/v1/tenants", status=401, json={"error": "invalid_token"})
    mocked_in_order.post(TOKEN_URL, **token_reply("fresh"))
    mocked_in_order.post(INSTAMSG + "/api/v1/tenants", status=201, json={"id": "t-9"})
    answer = client.post(
        "/blocks/createTenant", json={**APP, "name": "n", "maxClients": 1, "maxMessages": 1}
    )
    assert answer.status_code == 200 and envelope(answer) == {"id": "t-9"}
    creates = [bearer_of(c) for c in mocked_in_order.calls if c.request.url.endswith("/tenants")]
    assert creates == ["Bearer revoked", "Bearer fresh"]


def test_a_second_401_is_the_callers_error_not_a_loop(client, mocked):
    mocked.post(TOKEN_URL, **token_reply("whatever"))
    mocked.get(TENANT, status=401, json={"error": "invalid_token"})
    answer = client.post("/blocks/getSingleTenant", json={**APP, "id": "t-1"})
    assert answer.status_code == 401
    assert len([c for c in mocked.calls if "/tenants/" in c.request.url]) == 2
    assert "whatever" not in answer.get_data(as_text=True)


def test_a_callers_own_token_is_never_renewed(client, mocked):
    mocked.get(TENANT, status=401, json={"error": "invalid_token"})
    answer = client.post("/blocks/getSingleTenant", json={"accessToken": "mine-1234", "id": "t-1"})
    assert answer.status_code == 401 and len(mocked.calls) == 1


def test_only_one_refresh_runs_at_a_time(client, mocked, monkeypatch):
    callers = 6
    tokens = client.application.extensions["instamsg"].tokens
    real_token = tokens.token
    asked = threading.Condition()
    asking = [0]

    def counted_token(*args, **kwargs):
        with asked:
            asking[0] += 1
            asked.notify_all()
        return real_token(*args, **kwargs)

    monkeypatch.setattr(tokens, "token", counted_token)

    def held_token(request):
        # Answered only once all six calls have asked for a token: the other five are then
        # waiting for this refresh (were the lock broken, each would be here, fetching its own).
        with asked:
            assert asked.wait_for(lambda: asking[0] == callers, timeout=10), asking[0]
        return 200, {}, json.dumps(token_reply("shared")["json"])

    mocked.add_callback("POST", TOKEN_URL, callback=held_token, content_type="application/json")
    mocked.get(TENANT, json={})
    app = client.application
    statuses = []

    def call():
        statuses.append(
            app.test_client().post("/blocks/getSingleTenant", json={**APP, "id": "t-1"}).status_code
        )

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * callers
    assert len([c for c in mocked.calls if "/oauth2/" in c.request.url]) == 1


def test_wrong_credentials_are_reported_without_the_secret(client, mocked):
    mocked.post(TOKEN_URL, status=401, json={"message": "bad client demo-secret"})
    answer = client.post("/blocks/getSingleTenant", json={**APP, "id": "t-1"})
    assert answer.status_code == 401
    assert "demo-secret" not in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    "given, missing",
    [
        ({}, ["accessToken"]),
        ({"clientKey": "k"}, ["clientSecret"]),
        ({"clientSecret": "s"}, ["clientKey"]),
    ],
)
def test_one_way_to_authenticate_is_required(given, missing, client, nothing_sent):
    answer = client.post("/blocks/getSingleTenant", json={**given, "id": "t-1"})
    assert answer.status_code == 422
    error = envelope(answer)
    assert error["status_code"] == "REQUIRED_FIELDS" and error["fields"] == missing


def test_the_cache_is_keyed_by_a_hash_not_the_secret(client, mocked):
    mocked.post(TOKEN_URL, **token_reply("t"))
    mocked.get(TENANT, json={})
    client.post("/blocks/getSingleTenant", json={**APP, "id": "t-1"})
    keys = list(client.application.extensions["instamsg"].tokens._held)
    assert len(keys) == 1 and len(keys[0]) == 64 and "demo" not in keys[0]


def test_managed_tokens_against_the_sandbox_survive_a_revocation(tmp_path):
    app = create_app({"sandbox": True, "data_dir": str(tmp_path)})
    client = app.test_client()
    first = client.post(
        "/blocks/createTenant", json={**APP, "name": "a", "maxClients": 1, "maxMessages": 1}
    )
    assert first.status_code == 200
    Store(tmp_path / "sandbox.sqlite3").conn.execute("UPDATE tokens SET revoked = 1")
    second = client.post("/blocks/getTenants", json=APP)
    assert second.status_code == 200 and len(envelope(second)) == 1
    assert app.extensions["instamsg"].tokens.fetches == 2
