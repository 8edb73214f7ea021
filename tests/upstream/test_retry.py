"""One retry policy: which calls are sent again, after how long, and when to stop."""

from dataclasses import replace

import pytest

from app import create_app
from connector.upstream.retry import RetryPolicy
from tests.support.upstream import INSTAMSG, TOKEN

TENANT = INSTAMSG + "/api/v1/tenants/t-1"
GET_ARGS = {"accessToken": TOKEN, "id": "t-1"}
CREATE = {"accessToken": TOKEN, "name": "n", "maxClients": 1, "maxMessages": 1}


@pytest.fixture
def waits(app):
    """The waits the policy asked for, with the jitter pinned to its top (1.0)."""
    return pinned(app)


def pinned(app) -> list:
    recorded = []
    policy = app.extensions["instamsg"].upstream.policy
    policy.jitter = lambda: 1.0
    policy.sleep = recorded.append
    policy.base, policy.cap = 0.5, 3.0
    return recorded


def envelope(answer):
    return answer.json["contextWrites"]["to"]


@pytest.mark.parametrize("status", [503, 502, 504])
def test_a_read_is_sent_again_after_a_passing_failure(status, client, mocked_in_order, waits):
    mocked_in_order.get(TENANT, status=status)
    mocked_in_order.get(TENANT, json={"id": "t-1"})
    answer = client.post("/blocks/getSingleTenant", json=GET_ARGS)
    assert answer.status_code == 200 and envelope(answer) == {"id": "t-1"}
    assert len(mocked_in_order.calls) == 2 and waits == [0.5]


def test_a_read_is_sent_again_after_a_dropped_connection(settings, loopback):
    app = create_app(replace(settings, api_url=loopback.url))
    waits = pinned(app)
    loopback.get(TENANT, fault="drop", times=1)
    loopback.get(TENANT, json={"id": "t-1"}, times=1)
    answer = app.test_client().post("/blocks/getSingleTenant", json=GET_ARGS)
    assert answer.status_code == 200 and envelope(answer) == {"id": "t-1"}
    assert len(loopback.calls) == 2 and waits == [0.5]


def test_retry_after_is_honoured(client, mocked_in_order, waits):
    mocked_in_order.get(TENANT, status=429, headers={"Retry-After": "2"})
    mocked_in_order.get(TENANT, json={})
    assert client.post("/blocks/getSingleTenant", json=GET_ARGS).status_code == 200
    assert waits == [2.0]


def test_backoff_grows_and_is_capped_and_attempts_are_bounded(client, mocked_in_order, waits):
    for _ in range(4):  # the first attempt and INSTAMSG_RETRIES=3 more; a fifth would fail
        mocked_in_order.get(TENANT, status=503)
    answer = client.post("/blocks/getSingleTenant", json=GET_ARGS)
    assert answer.status_code == 502
    assert len(mocked_in_order.calls) == 4
    assert waits == [0.5, 1.0, 2.0]
    assert envelope(answer)["retryable"] is True


def test_a_post_is_never_sent_twice(client, mocked, waits):
    mocked.post(INSTAMSG + "/api/v1/tenants", status=503)
    answer = client.post("/blocks/createTenant", json=CREATE)
    assert answer.status_code == 502 and len(mocked.calls) == 1 and waits == []
    assert envelope(answer)["retryable"] is True


def test_get_access_token_is_the_one_post_that_is_repeated(client, mocked_in_order, waits):
    mocked_in_order.post(INSTAMSG + "/oauth2/token", status=503)
    mocked_in_order.post(INSTAMSG + "/oauth2/token", json={"access_token": "a", "expires_in": 60})
    answer = client.post(
        "/blocks/getAccessToken", json={"clientKey": "demo-key", "clientSecret": "demo-secret"}
    )
    assert answer.status_code == 200 and len(mocked_in_order.calls) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 409])
def test_a_refusal_is_not_repeated(status, client, mocked, waits):
    mocked.get(TENANT, status=status, json={"message": "no"})
    answer = client.post("/blocks/getSingleTenant", json=GET_ARGS)
    assert answer.status_code == status and len(mocked.calls) == 1
    assert envelope(answer)["retryable"] is False


def test_a_wait_past_the_deadline_is_not_taken(client, mocked, waits):
    client.application.extensions["instamsg"].upstream.policy.deadline = 5
    mocked.get(TENANT, status=429, headers={"Retry-After": "120"})
    answer = client.post("/blocks/getSingleTenant", json=GET_ARGS)
    assert len(mocked.calls) == 1 and waits == []
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "120"
    assert envelope(answer)["retry_after_s"] == 120 and envelope(answer)["retryable"] is True


def test_a_429_without_retry_after_still_answers_one(client, mocked, waits):
    mocked.get(TENANT, status=429)
    answer = client.post("/blocks/getSingleTenant", json=GET_ARGS)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
    assert "retry_after_s" not in envelope(answer)


def test_a_timeout_is_not_repeated(settings, loopback):
    # A real read timeout (0.5 s in tests) against an answer that takes 1 s.
    app = create_app(replace(settings, api_url=loopback.url))
    waits = pinned(app)
    loopback.get(TENANT, delay=1.0)
    answer = app.test_client().post("/blocks/getSingleTenant", json=GET_ARGS)
    assert answer.status_code == 504 and len(loopback.calls) == 1 and waits == []
    assert envelope(answer)["retryable"] is True


def test_validation_errors_say_they_are_not_retryable(client, nothing_sent):
    assert envelope(client.post("/blocks/getSingleTenant", json={}))["retryable"] is False


def test_an_http_date_retry_after_is_understood():
    from email.utils import formatdate

    from connector.upstream.outcomes import retry_after

    assert 8 <= retry_after(formatdate(__import__("time").time() + 10, usegmt=True)) <= 10
    assert retry_after("3") == 3.0 and retry_after("soon") is None and retry_after(None) is None


def test_the_jitter_stays_between_half_and_all_of_the_backoff():
    policy = RetryPolicy(base=1, cap=100)
    assert all(0.5 <= policy.jitter() <= 1.0 for _ in range(1000))
    policy.jitter = lambda: 1.0
    assert [policy.backoff(n) for n in range(9)] == [1, 2, 4, 8, 16, 32, 64, 100, 100]


def test_the_policy_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("INSTAMSG_RETRIES", "1")
    monkeypatch.setenv("INSTAMSG_DEADLINE", "9")
    policy = create_app({"api_url": INSTAMSG}).extensions["instamsg"].upstream.policy
    assert (policy.retries, policy.deadline) == (1, 9)
