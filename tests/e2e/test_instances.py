"""Several connector instances behind one Redis, over real HTTP on loopback: separate
gunicorn processes, separate data directories, one real redis-server, one recording
upstream. Exactly-once publishes, one token fetch for all, Redis outages answered and
recovered, metrics summed over workers, and a graceful stop."""

import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
import requests

from tests.support.faultkit import LOCATION, MESSAGES, publish_over_http
from tests.support.loopback import Loopback
from tests.support.metrics import in_flight, metric_values
from tests.support.redisd import redisd_fixture  # noqa: F401  (the real redis-server fixture)
from tests.support.servers import gunicorn
from tests.support.upstream import APP, TOKEN
from tests.support.waiting import wait_until

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture
def recording():
    """The upstream both gunicorn processes call: a real server on 127.0.0.1, for this test
    only (the tests assert on what it recorded, not on every answer being used)."""
    with Loopback() as server:
        yield server


@pytest.fixture
def instances(redisd, recording, tmp_path):
    """Two live-mode instances (one worker each) sharing one Redis and one upstream."""
    with ExitStack() as stack:
        bases = []
        for n in range(2):
            env = {
                "INSTAMSG_SANDBOX": "0",
                "INSTAMSG_API_URL": recording.url,
                "INSTAMSG_DATA_DIR": str(tmp_path / f"instance-{n}"),
                "REDIS_URL": redisd.url,
            }
            base, _ = stack.enter_context(gunicorn(env, workers=1))
            bases.append(base)
        yield bases


def publish(base, key=None):
    """A publish to the instance at ``base``, its payload named by its key."""
    return publish_over_http(base, key, key or "keyless", timeout=20)


def test_200_keyed_publishes_over_two_instances_reach_instamsg_50_times(instances, recording):
    recording.post(MESSAGES, status=201, headers=LOCATION, delay=0.2)
    calls = [(instances[i % 2], f"key-{i % 50}") for i in range(200)]
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda call: publish(*call), calls))

    publishes = [c for c in recording.calls if c.request.url.endswith("/messages")]
    seen = sorted(
        {(a.status_code, str(a.headers.get("Idempotent-Replayed")), a.text[:160]) for a in answers}
    )
    assert len(publishes) == 50, seen
    kinds = {"first": 0, "replayed": 0, "in use": 0}
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["contextWrites"]["to"]["status_code"] == "IDEMPOTENCY_KEY_IN_USE"
            kinds["in use"] += 1
        else:
            assert answer.status_code == 200, answer.text
            replayed = answer.headers.get("Idempotent-Replayed") == "true"
            kinds["replayed" if replayed else "first"] += 1
    assert kinds["first"] == 50 and kinds["replayed"] + kinds["in use"] == 150


def test_100_managed_token_calls_over_two_instances_fetch_one_token(instances, recording):
    recording.post(
        "/oauth2/token", json={"access_token": "shared-1", "expires_in": 3600}, delay=0.3
    )
    recording.get("/api/v1/tenants/t-1", json={"id": "t-1"})
    args = {**APP, "id": "t-1"}
    with ThreadPoolExecutor(50) as pool:
        answers = list(
            pool.map(
                lambda i: requests.post(
                    instances[i % 2] + "/blocks/getSingleTenant", json=args, timeout=20
                ),
                range(100),
            )
        )
    assert [a.status_code for a in answers] == [200] * 100
    fetches = [c for c in recording.calls if "/oauth2/token" in c.request.url]
    assert len(fetches) == 1
    tenant_calls = [c for c in recording.calls if c.request.url.endswith("/tenants/t-1")]
    assert {c.request.headers["Authorization"] for c in tenant_calls} == {"Bearer shared-1"}


def test_a_redis_outage_mid_run_is_answered_and_recovered_without_a_restart(
    instances, recording, redisd
):
    recording.post(MESSAGES, status=201, headers=LOCATION)
    assert publish(instances[0], "before").status_code == 200
    redisd.stop()
    for base in instances:
        keyless = publish(base)
        keyed = publish(base, "during")
        ready = requests.get(base + "/readyz", timeout=5)
        assert keyless.status_code == 200
        assert keyed.status_code == 503 and keyed.headers["Retry-After"] == "5"
        assert keyed.json()["contextWrites"]["to"]["status_code"] == "IDEMPOTENCY_UNAVAILABLE"
        assert ready.status_code == 503 and ready.json()["store"] == "redis"
    publishes = [c for c in recording.calls if c.request.url.endswith("/messages")]
    assert len(publishes) == 3  # "before" and the two keyless ones: none of the keyed

    redisd.start()
    for base in instances:
        assert requests.get(base + "/readyz", timeout=5).status_code == 200
    # (This Redis keeps nothing on disk: what it held before the stop is gone.)
    assert publish(instances[0], "after").status_code == 200
    again = publish(instances[1], "after")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"


def test_metrics_are_summed_over_workers(recording, tmp_path):
    recording.get("/api/v1/tenants/t-1", json={"id": "t-1"})
    recording.get("/api/v1/tenants/gone", status=404, json={"message": "no"})
    env = {
        "INSTAMSG_SANDBOX": "0",
        "INSTAMSG_API_URL": recording.url,
        "INSTAMSG_DATA_DIR": str(tmp_path),
    }
    with gunicorn(env, workers=2) as (base, _):
        # New connections each time, so that both workers take calls.
        for n in range(24):
            tenant = "t-1" if n < 20 else "gone"
            requests.post(
                base + "/blocks/getSingleTenant",
                json={"accessToken": TOKEN, "id": tenant},
                headers={"Connection": "close"},
                timeout=10,
            )
        text = requests.get(base + "/metrics", timeout=10).text
    calls = metric_values(text, "instamsg_connector_calls_total")
    assert calls[(("block", "getSingleTenant"), ("code", "SUCCESS"))] == 20
    assert calls[(("block", "getSingleTenant"), ("code", "API_ERROR"))] == 4
    statuses = metric_values(text, "instamsg_connector_upstream_responses_total")
    assert statuses[(("status", "200"),)] == 20 and statuses[(("status", "404"),)] == 4
    seconds = metric_values(text, "instamsg_connector_call_seconds_count")
    assert seconds[(("block", "getSingleTenant"),)] == 24


def test_sigterm_lets_ten_slow_calls_finish(tmp_path):
    env = {"INSTAMSG_SANDBOX": "1", "INSTAMSG_DATA_DIR": str(tmp_path)}
    with gunicorn(env, workers=2) as (base, process):
        rule = {"fault": "slow", "delay": 3, "path": "/oauth2/token"}
        assert requests.post(base + "/_sandbox/faults", json=rule, timeout=5).status_code == 201
        answers, started = [], threading.Barrier(11)

        def call():
            started.wait()
            answers.append(requests.post(base + "/blocks/getAccessToken", json=APP, timeout=30))

        threads = [threading.Thread(target=call) for _ in range(10)]
        for thread in threads:
            thread.start()
        started.wait()
        # the ten calls are in the slow fault now
        wait_until(lambda: in_flight(base) == 10, within=10)
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        process.wait(timeout=30)
    assert [a.status_code for a in answers] == [200] * 10
    assert all(json.loads(a.text)["callback"] == "success" for a in answers)
