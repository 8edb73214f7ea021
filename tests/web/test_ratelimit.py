"""RATE_LIMIT: one caller's runaway flow cannot spend the account for the others."""

from dataclasses import replace

import pytest
import responses
from prometheus_client import REGISTRY as METRICS

from app import create_app
from connector.config import ConfigError, Settings
from tests.support.redisd import redisd_fixture  # noqa: F401  (the real redis-server fixture)
from tests.support.upstream import INSTAMSG, TOKEN

TENANT = INSTAMSG + "/api/v1/tenants/t-1"
ARGS = {"accessToken": TOKEN, "id": "t-1"}


def limited(settings, **more):
    return create_app(replace(settings, rate_limit="20/second", **more)).test_client()


def burst(client, n=100, key="key-a", route="/blocks/"):
    return [
        client.post(route + "getSingleTenant", json=ARGS, headers={"X-API-Key": key})
        for _ in range(n)
    ]


def test_a_burst_gets_the_limit_and_429s_and_instamsg_sees_only_the_successes(settings):
    client = limited(settings, api_keys=("key-a", "key-b"))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(TENANT, json={"id": "t-1"})
        answers = burst(client)
        sent = len(mock.calls)
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(ok) == 20 and len(refused) == 80 and sent == 20
    error = refused[0].json["contextWrites"]["to"]
    assert error["status_code"] == "RATE_LIMITED" and error["retryable"] is True
    assert error["status_msg"].startswith(
        "Too many calls: this caller may run 20/second (RATE_LIMIT)."
    )
    assert 1 <= int(refused[0].headers["Retry-After"]) <= 2


def test_another_key_is_not_affected(settings):
    client = limited(settings, api_keys=("key-a", "key-b"))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(TENANT, json={"id": "t-1"})
        burst(client, 30, "key-a")
        other = burst(client, 10, "key-b")
    assert [a.status_code for a in other] == [200] * 10


def test_the_rapidapi_route_answers_the_limit_with_200_and_the_envelope(settings):
    client = limited(settings)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(TENANT, json={"id": "t-1"})
        answers = burst(client, 25, route="/api/InstaMsg/")
    assert {a.status_code for a in answers} == {200}
    codes = [a.json["contextWrites"]["to"].get("status_code") for a in answers]
    assert codes.count("RATE_LIMITED") == 5


def test_catalogue_routes_and_probes_are_never_limited(settings):
    client = limited(settings)
    for _ in range(40):
        assert client.get("/blocks").status_code == 200
        assert client.get("/healthz").status_code == 200


def test_refusals_are_counted_in_metrics(settings):
    before = METRICS.get_sample_value(
        "instamsg_connector_calls_total", {"block": "getSingleTenant", "code": "RATE_LIMITED"}
    )
    client = limited(settings)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(TENANT, json={"id": "t-1"})
        burst(client, 23)
    after = METRICS.get_sample_value(
        "instamsg_connector_calls_total", {"block": "getSingleTenant", "code": "RATE_LIMITED"}
    )
    assert after - (before or 0) == 3


@pytest.mark.slow
def test_with_redis_two_instances_share_the_count(settings, redisd):
    first = limited(settings, redis_url=redisd.url)
    second = limited(settings, redis_url=redisd.url)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(TENANT, json={"id": "t-1"})
        answers = burst(first, 15) + burst(second, 15)
        assert len(mock.calls) == 20
    assert [a.status_code for a in answers].count(200) == 20


def test_without_rate_limit_nothing_is_limited(client):
    with responses.RequestsMock() as mock:
        mock.get(TENANT, json={"id": "t-1"})
        assert {a.status_code for a in burst(client, 60)} == {200}


@pytest.mark.parametrize("raw", ["fast", "20 per sec", "20/fortnight"])
def test_a_rate_limit_that_does_not_parse_stops_the_start(raw):
    with pytest.raises(ConfigError, match="^RATE_LIMIT must be limits such as"):
        Settings.from_env({"RATE_LIMIT": raw})


def test_a_rate_limit_is_read_from_the_environment():
    assert Settings.from_env({"RATE_LIMIT": "50/second;2000/minute"}).rate_limit == (
        "50/second;2000/minute"
    )


def test_behind_a_proxy_each_caller_is_counted_by_its_forwarded_address(settings):
    client = create_app(replace(settings, rate_limit="3/minute", proxy_hops=1)).test_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(TENANT, json={"id": "t-1"})
        first = [
            client.post(
                "/blocks/getSingleTenant", json=ARGS, headers={"X-Forwarded-For": "198.51.100.7"}
            ).status_code
            for _ in range(4)
        ]
        other = client.post(
            "/blocks/getSingleTenant", json=ARGS, headers={"X-Forwarded-For": "198.51.100.8"}
        )
    assert first == [200, 200, 200, 429]
    assert other.status_code == 200


def test_without_proxy_hops_a_forwarded_address_is_not_trusted(settings):
    client = create_app(replace(settings, rate_limit="2/minute")).test_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(TENANT, json={"id": "t-1"})
        statuses = [
            client.post(
                "/blocks/getSingleTenant", json=ARGS, headers={"X-Forwarded-For": f"203.0.113.{n}"}
            ).status_code
            for n in range(3)
        ]
    assert statuses == [200, 200, 429]
