"""Hooks under real gunicorn: two instances on one Redis serve the same hooks, and a
delivery sent to both, five times, publishes once; no log line of either holds a URL token."""

import json
from contextlib import ExitStack

import pytest
import requests

from tests.support.faultkit import LOCATION, MESSAGES, connector
from tests.support.loopback import Loopback
from tests.support.redisd import redisd_fixture  # noqa: F401  (the real redis-server fixture)
from tests.support.upstream import TOKEN
from tests.support.webhooks import fixture, github_headers

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

PUSH = fixture("github_push.json")
HOOK = {
    "block": "publishMessage",
    "args": {"accessToken": TOKEN, "tenantId": "t", "clientId": "c", "id": 7, "type": "pub"},
    "map": {"topic": "'builds'", "payload": "body.head_commit.message", "qos": "`1`"},
}


@pytest.fixture
def two_instances(redisd, tmp_path):
    """Two connectors (one worker each, data directories of their own) on one Redis, calling
    one recording upstream."""
    with Loopback() as upstream, ExitStack() as stack:
        upstream.post(MESSAGES, status=201, headers=LOCATION)
        started = [
            stack.enter_context(connector(tmp_path / f"i{n}", upstream, REDIS_URL=redisd.url))
            for n in range(2)
        ]
        yield [base for base, _ in started], [master for _, master in started], upstream


def test_two_instances_serve_one_hook_and_five_deliveries_publish_once(two_instances):
    bases, masters, upstream = two_instances
    made = requests.post(
        bases[0] + "/hooks", json={**HOOK, "verify": {"scheme": "github"}}, timeout=10
    ).json()
    assert [h["id"] for h in requests.get(bases[1] + "/hooks", timeout=10).json()] == [made["id"]]
    headers = github_headers(made["secret"], PUSH, "delivery-5x")
    answers = [
        requests.post(bases[n % 2] + made["url"], data=PUSH, headers=headers, timeout=20)
        for n in range(5)
    ]
    assert [a.status_code for a in answers] == [200] * 5, answers[0].text
    assert len({a.text for a in answers}) == 1
    publishes = [c for c in upstream.calls if c.request.url.endswith("/messages")]
    assert len(publishes) == 1
    assert json.loads(publishes[0].request.body)["payload"] == (
        "Close the valve when the sensor goes quiet"
    )
    records = requests.get(f"{bases[1]}/hooks/{made['id']}/deliveries", timeout=10).json()
    assert [(r["delivery_id"], r["attempts"]) for r in records] == [("delivery-5x", 5)]


def test_a_token_hooks_url_is_in_no_log_line_of_either_instance(two_instances):
    bases, masters, upstream = two_instances
    made = requests.post(
        bases[0] + "/hooks", json={**HOOK, "verify": {"scheme": "token"}}, timeout=10
    ).json()
    for base in bases:
        answer = requests.post(base + made["url"], json={"head_commit": {"message": "m"}})
        assert answer.status_code == 200
        wrong = requests.post(base + made["url"][:-4] + "AAAA", json={})
        assert wrong.status_code == 404
    logged = "".join(master.output() for master in masters)
    assert made["id"] in logged and made["secret"] not in logged
