"""The watcher as it runs (`flask --app app events watch`), killed for real: -9 in the middle
of a poll (nothing lost, nothing twice), and two watchers on one Redis (one polls; the other
takes over when it dies). Messages are published through the sandbox both processes share."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import pytest

from app import create_app
from tests.events.conftest import publish, subscribe
from tests.support.loopback import Loopback
from tests.support.redisd import redisd_fixture  # noqa: F401  (the real redis-server fixture)
from tests.support.servers import ROOT, stop
from tests.support.waiting import wait_until

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

POLL = 0.2
HOLDS = "holds the lease"


@contextlib.contextmanager
def watcher(tmp_path, name, command=("events", "watch"), **env):
    """A watcher process (or another ``flask --app app`` command); yields it, with ``log()``
    (what it wrote so far)."""
    path = tmp_path / f"{name}.log"
    full = {
        **os.environ,
        "INSTAMSG_SANDBOX": "1",
        "INSTAMSG_DATA_DIR": str(tmp_path / "data"),
        "EVENTS_POLL_SECONDS": str(POLL),
        "EVENTS_QUEUED": "0",  # the watcher sends: no queue consumer runs here
        **env,
    }
    with open(path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", *command],
            cwd=ROOT,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process.log = lambda: path.read_text(errors="replace")
    try:
        yield process
    finally:
        stop(process)


def kill_9(process) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def local(settings, tmp_path):
    """The test's own connector over the watchers' data directory (sandbox, events)."""
    return replace(settings, sandbox=True, data_dir=str(tmp_path / "data"))


def delivered(catcher) -> Counter:
    return Counter(c.request.headers["webhook-id"] for c in catcher.calls)


def test_a_watcher_killed_mid_poll_loses_nothing_and_sends_nothing_twice(local, tmp_path):
    app = create_app(local)
    client = app.test_client()
    tenant = client.post(
        "/blocks/createTenant",
        json={"clientKey": "demo-key", "clientSecret": "demo-secret", "name": "F",
              "maxClients": 2, "maxMessages": 100},
    ).json["contextWrites"]["to"]["id"]  # fmt: skip
    pump = (tenant, _client(client, tenant))
    with Loopback() as catcher:
        catcher.post("/hook")
        subscribe(client, pump, catcher.url + "/hook")
        with watcher(tmp_path, "first") as first:
            for n in (1, 2):
                publish(client, pump, n)
            wait_until(lambda: len(catcher.calls) == 2, 30, explain=first.log)
            path = f"/api/v1/tenants/{pump[0]}/clients/{pump[1]}/messages"
            fault = {"fault": "slow", "method": "GET", "path": path, "delay": 5, "times": 1}
            assert client.post("/_sandbox/faults", json=fault).status_code == 201
            for n in (3, 4, 5):
                publish(client, pump, n)

            def mid_poll():  # the slow rule was taken: its GET is being answered now
                return client.get("/_sandbox/faults").json[0]["remaining"] == 0

            wait_until(mid_poll, 30, explain=first.log)
            kill_9(first)
        assert len(catcher.calls) == 2
        with watcher(tmp_path, "second") as second:
            wait_until(lambda: len(catcher.calls) == 5, 30, explain=second.log)
            publish(client, pump, 6)  # sent after any stray repeat of 1-5 would have been
            wait_until(lambda: len(catcher.calls) >= 6, 30, explain=second.log)
        sent = delivered(catcher)
        assert len(sent) == 6 and set(sent.values()) == {1}, sent


def _client(client, tenant):
    answer = client.post(
        "/blocks/createClient",
        json={"clientKey": "demo-key", "clientSecret": "demo-secret", "tenantId": tenant,
              "type": "device", "name": "pump", "provisioningId": "p-1",
              "pubTopics": ["telemetry"]},
    )  # fmt: skip
    return answer.json["contextWrites"]["to"]["id"]


def test_two_watchers_on_one_redis_poll_once_and_take_over(local, tmp_path, redisd):
    app = create_app(replace(local, redis_url=redisd.url))
    client = app.test_client()
    tenant = client.post(
        "/blocks/createTenant",
        json={"clientKey": "demo-key", "clientSecret": "demo-secret", "name": "F",
              "maxClients": 2, "maxMessages": 100},
    ).json["contextWrites"]["to"]["id"]  # fmt: skip
    pump = (tenant, _client(client, tenant))
    with Loopback() as catcher:
        catcher.post("/hook")
        subscribe(client, pump, catcher.url + "/hook")
        with (
            watcher(tmp_path, "a", REDIS_URL=redisd.url) as one,
            watcher(tmp_path, "b", REDIS_URL=redisd.url) as two,
        ):
            for n in range(1, 6):
                publish(client, pump, n)
            wait_until(lambda: len(catcher.calls) == 5, 30, explain=lambda: one.log() + two.log())
            wait_until(lambda: "waits" in one.log() + two.log(), 30)
            holders = [w for w in (one, two) if HOLDS in w.log()]
            assert len(holders) == 1  # one polls; the other waits
            (holder,) = holders
            other = two if holder is one else one
            kill_9(holder)
            wait_until(lambda: HOLDS in other.log(), 30, explain=other.log)
            publish(client, pump, 6)
            wait_until(lambda: len(catcher.calls) >= 6, 30, explain=other.log)
            publish(client, pump, 7)
            wait_until(lambda: len(catcher.calls) >= 7, 30, explain=other.log)
        sent = delivered(catcher)
        assert len(sent) == 7 and set(sent.values()) == {1}, sent


def test_queued_deliveries_run_on_the_hooks_worker(local, tmp_path):
    app = create_app(local)
    client = app.test_client()
    tenant = client.post(
        "/blocks/createTenant",
        json={"clientKey": "demo-key", "clientSecret": "demo-secret", "name": "F",
              "maxClients": 2, "maxMessages": 100},
    ).json["contextWrites"]["to"]["id"]  # fmt: skip
    pump = (tenant, _client(client, tenant))
    queued = {"EVENTS_QUEUED": "1"}
    with Loopback() as catcher:
        catcher.post("/hook")
        subscribe(client, pump, catcher.url + "/hook")
        with (
            watcher(tmp_path, "watch", **queued) as watch,
            watcher(tmp_path, "worker", ("hooks", "worker"), **queued) as worker,
        ):
            for n in range(1, 6):
                publish(client, pump, n)
            wait_until(
                lambda: len(catcher.calls) >= 5, 30, explain=lambda: watch.log() + worker.log()
            )
            publish(client, pump, 6)
            wait_until(lambda: len(catcher.calls) >= 6, 30, explain=worker.log)
        sent = delivered(catcher)
        assert len(sent) == 6 and set(sent.values()) == {1}, sent
