"""Instant triggers under real faults, with the processes `make run` starts: gunicorn (its
master starts the consumer of queued work, HOOKS_WORKER=1) and the event watcher (`flask
--app app events watch`), over one data directory (the sandbox InstaMsg they share) and, for
the Redis runs, one real redis-server with persistence on as operators run it.

Each run publishes through the connector's HTTP face, breaks something for real, heals it,
and then counts what a loopback catcher accepted: every delivery checked with
``standardwebhooks``' own ``Webhook.verify``, each message delivered once per subscription.
The counts (published, delivered, duplicates) are printed (``-s`` shows them) and kept as
the test's properties (``--junitxml`` with ``-o junit_family=xunit1`` carries them).

- The target down: nothing listens at its port (connection refused), or it answers 503, for
  EVENTS_FAULT_OUTAGE_S seconds (default a few; 120 for the issue's two minutes) while
  messages are published; the retry schedule is EVENTS_FAULT_SCHEDULE (default a short one;
  ``default`` runs the connector's own, 5 s, 5 min...). A schedule shorter than the outage
  would fail the deliveries by design: the test refuses that setting. (A target down past
  EVENTS_DISABLE_AFTER is disabled: test_deliveries.py proves it.)
- Redis stopped (SIGTERM, or kill -9 at once after its last acknowledged write) and started
  again on its port and data directory, messages published before, during and after.
- The connector restarted (SIGTERM to gunicorn and all it started, or kill -9 of its master
  alone) while deliveries wait on a target answering 503; the watcher runs on.
- Redis stopped while a target is answering a delivery: its outcome is written once Redis is
  back, and the message is not sent again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from standardwebhooks import Webhook

from connector.config import Settings
from connector.events.deliveries import delivery_id
from connector.events.watcher import QUEUE_AGAIN_AFTER
from tests.events.test_watch_process import watcher
from tests.support.loopback import Loopback, closed_url
from tests.support.redisd import redis_server
from tests.support.servers import gunicorn, sandbox
from tests.support.upstream import APP
from tests.support.waiting import wait_until

#: Starts real servers and processes: left out of `make test-fast`.
pytestmark = pytest.mark.slow

#: The watcher's round (seconds): short, so that a run waits on the faults, not on polls.
POLL = 0.2
#: How long the target is down, and the schedule its deliveries are retried on.
OUTAGE_S = float(os.environ.get("EVENTS_FAULT_OUTAGE_S", "4"))
SCHEDULE = os.environ.get("EVENTS_FAULT_SCHEDULE", "0.5,1,2,4,8")
#: Messages published during an outage, spread over it.
DURING = 4
#: The longest a run waits for what is due (seconds): a loaded machine is slow, not broken.
SETTLE_S = 60
#: redis-server as operators run it: an append-only file, written to disk each second.
PERSISTENT = ("--appendonly", "yes", "--appendfsync", "everysec")
#: How long Redis is down (seconds): many of the watcher's rounds, and the consumer's reads.
REDIS_OUTAGE_S = 3.0


def waits() -> list[float]:
    if SCHEDULE == "default":
        return list(Settings.events_retry_schedule)
    return [float(w) for w in SCHEDULE.split(",")]


def schedule_env() -> dict:
    assert sum(waits()) > OUTAGE_S, "EVENTS_FAULT_SCHEDULE must outlast EVENTS_FAULT_OUTAGE_S"
    return {} if SCHEDULE == "default" else {"EVENTS_RETRY_SCHEDULE": SCHEDULE}


def retried_within() -> float:
    """How long after an outage its deliveries may take: the schedule's first waits that
    span the outage (a try may fail just before the target is back), and SETTLE_S."""
    spent = 0.0
    for wait in waits():
        spent += wait
        if spent > OUTAGE_S:
            break
    return spent + SETTLE_S


class Connector:
    """gunicorn (one worker; its master starts the queue's consumer when ``queued``) and a
    watcher, as `make run` runs them, on one data directory; the HTTP calls a flow makes."""

    def __init__(self, base, master, watch):
        self.base, self.master, self.watch = base, master, watch
        self.pump = None

    def call(self, block, **args):
        answer = requests.post(f"{self.base}/blocks/{block}", json={**APP, **args}, timeout=30)
        assert answer.status_code == 200, (block, answer.text)
        return answer.json()["contextWrites"]["to"]

    def make_pump(self):
        tenant = self.call("createTenant", name="Farm", maxClients=5, maxMessages=1000)["id"]
        client = self.call(
            "createClient", tenantId=tenant, type="device", name="pump",
            provisioningId="pump-1", pubTopics=["telemetry"],
        )["id"]  # fmt: skip
        self.pump = (tenant, client)

    def subscribe(self, target):
        flt = {"tenantId": self.pump[0], "clientId": self.pump[1]}
        body = {"event": "message.received", "filter": flt, "target_url": target, **APP}
        answer = requests.post(f"{self.base}/subscriptions", json=body, timeout=30)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def publish(self, number):
        return self.call(
            "publishMessage", tenantId=self.pump[0], clientId=self.pump[1], id=number,
            type="pub", topic="telemetry", payload=f"reading {number}", qos=1,
        )["messageId"]  # fmt: skip

    def log(self):
        return self.watch.log() + self.master.output()

    def settled(self, subs, count) -> bool:
        """Whether each of ``subs`` has ``count`` deliveries, all delivered (written so)."""
        for sub in subs:
            log = requests.get(f"{self.base}/subscriptions/{sub['id']}/deliveries", timeout=30)
            states = [d["state"] for d in log.json()] if log.status_code == 200 else []
            if states != ["delivered"] * count:
                return False
        return True

    def processes(self) -> dict:
        """The pids of everything `make run` started: the master, its worker, the consumer
        (under the shell loop that would start it again) and the watcher."""
        found = {"master": self.master.pid, "watcher": self.watch.pid}
        for child in children(self.master.pid):
            grand = children(child)
            if grand:  # the shell loop: its child is the consumer
                found["consumer"] = grand[0]
            else:
                found["worker"] = child
        return found

    def all_alive(self, pids: dict) -> bool:
        return all(alive(pid) for pid in pids.values())


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        return [int(p) for p in path.read_text().split()]
    return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def connector(tmp_path, queued=True, **env):
    full = {
        "EVENTS_POLL_SECONDS": str(POLL),
        "EVENTS_QUEUED": "1" if queued else "0",
        "HOOKS_WORKER": "1" if queued else "0",
        **env,
    }
    with (
        gunicorn(sandbox(tmp_path / "data", **full), workers=1, timeout=60) as (base, master),
        watcher(tmp_path, "watch", **full) as watch,
    ):
        conn = Connector(base, master, watch)
        conn.make_pump()
        if queued:  # the consumer is up before the first job
            wait_until(lambda: "consumer" in conn.processes(), 30, explain=conn.log)
        yield conn


class Tally:
    """What the catcher accepted (2xx), by ``webhook-id``, each verified with the
    subscription's secret."""

    def __init__(self):
        self.accepted: Counter = Counter()

    def take(self, calls, secrets: dict, accepted=True):
        for call in calls:
            sent = call.request
            hook = Webhook(secrets[sent.headers["webhook-id"]])
            body = hook.verify(sent.body, dict(sent.headers))
            assert body["type"] == "message.received"
            if accepted:
                self.accepted[sent.headers["webhook-id"]] += 1

    def follow(self, target, start, secrets, count):
        """A condition for wait_until: takes the target's calls from ``start`` on as they
        come (a signature's timestamp is checked within the library's 5 minutes, so a run
        longer than that must check each when it arrives); true once ``count`` were taken."""
        taken = [start]

        def arrived():
            fresh = target.calls[taken[0] :]
            taken[0] += len(fresh)
            self.take(fresh, secrets)
            return sum(self.accepted.values()) >= count

        return arrived


def report(record_property, name, published, subscriptions, tally, began, **more):
    delivered = sum(tally.accepted.values())
    figures = {
        "published": published,
        "subscriptions": subscriptions,
        "delivered": delivered,
        "duplicates": delivered - len(tally.accepted),
        **more,
        "seconds": round(time.monotonic() - began, 1),
    }
    for key, value in figures.items():
        record_property(key, value)
    print(f"\n{name}: " + " ".join(f"{k}={v}" for k, v in figures.items()))


def expected(subs, ids) -> dict:
    """webhook-id -> the subscription's secret, for every message and subscription."""
    return {delivery_id(sub["id"], i): sub["secret"] for sub in subs for i in ids}


# -- the target down ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "queued"),
    [("refused", True), ("503", True), ("refused", False)],
    ids=["refused-queued", "503-queued", "refused-in-watcher"],
)
def test_a_target_down_gets_every_delivery_once_when_it_comes_back(
    tmp_path, record_property, down, queued
):
    began = time.monotonic()
    url = closed_url()
    port = urlsplit(url).port
    target = Loopback(port=port).start()
    target.post("/hook")
    tally = Tally()
    with connector(tmp_path, queued, **schedule_env()) as conn:
        try:
            sub = conn.subscribe(url + "/hook")
            ids = [conn.publish(n) for n in (1, 2)]
            wait_until(lambda: len(target.calls) == 2, SETTLE_S, explain=conn.log)
            up = len(target.calls)  # accepted before the outage
            tally.take(target.calls, expected([sub], ids))
            if down == "refused":  # nothing listens at the port any more
                target.close()
            else:
                switch(target, 503)
            start = time.monotonic()
            for n in range(3, 3 + DURING):
                ids.append(conn.publish(n))
                time.sleep(OUTAGE_S / DURING)
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - start)))
            if down == "refused":  # listening again, at the same port
                target = Loopback(port=port).start()
                target.post("/hook")
                healed = 0
            else:
                healed = switch(target, 204)
                tally.take(target.calls[up:healed], expected([sub], ids), accepted=False)
            ids.append(conn.publish(3 + DURING))  # after any stray repeat would have come
            secrets = expected([sub], ids)
            arrived = tally.follow(target, healed, secrets, len(ids))
            wait_until(arrived, retried_within(), explain=conn.log)
            time.sleep(5 * POLL)  # a few more rounds: a repeat would show now
            arrived()
            log = requests.get(
                f"{conn.base}/subscriptions/{sub['id']}/deliveries?limit=100", timeout=30
            )
        finally:
            target.close()
    tries = sum(d["attempts"] for d in log.json())
    report(record_property, f"target down ({down})", len(ids), 1, tally, began, tries=tries)
    assert set(tally.accepted) == set(secrets), "a delivery never arrived"
    assert set(tally.accepted.values()) == {1}, tally.accepted
    assert {d["state"] for d in log.json()} == {"delivered"}


def switch(target, status) -> int:
    """From now on the target answers ``status``; how many calls it had before."""
    with target.lock:
        target.rules = []
        target.post("/hook", status=status)
        return len(target.calls)


# -- Redis restarted ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "queued"),
    [("SIGTERM", True), ("SIGKILL", True), ("SIGTERM", False)],
    ids=["term-queued", "kill9-queued", "term-in-watcher"],
)
def test_redis_restarted_loses_nothing_and_sends_nothing_twice(
    tmp_path, record_property, how, queued
):
    began = time.monotonic()
    tally = Tally()
    with (
        redis_server(tmp_path / "redis", options=PERSISTENT) as redisd,
        Loopback() as target,
        connector(tmp_path, queued, REDIS_URL=redisd.url) as conn,
    ):
        target.post("*")
        subs = [conn.subscribe(f"{target.url}/s{n}") for n in range(2)]
        pids = conn.processes()
        ids = [conn.publish(n) for n in (1, 2, 3)]
        wait_until(lambda: len(target.calls) == 6, SETTLE_S, explain=conn.log)
        # every outcome written (acknowledged by Redis), and at once the fault
        wait_until(lambda: conn.settled(subs, len(ids)), SETTLE_S, explain=conn.log)
        failed_before = conn.watch.log().count("failed")
        if how == "SIGKILL":
            redisd.kill()
        else:
            redisd.stop()
        down = time.monotonic()
        ids += [conn.publish(n) for n in (4, 5, 6)]
        # the watcher's rounds fail, are logged, and it carries on
        wait_until(
            lambda: conn.watch.log().count("failed") >= failed_before + 3, SETTLE_S,
            explain=conn.log,
        )  # fmt: skip
        time.sleep(max(0.0, REDIS_OUTAGE_S - (time.monotonic() - down)))
        redisd.start()
        ids += [conn.publish(n) for n in (7, 8, 9)]
        wanted = 2 * len(ids)
        wait_until(lambda: len(target.calls) >= wanted, SETTLE_S, explain=conn.log)
        ids.append(conn.publish(10))  # after any stray repeat would have come
        wait_until(lambda: len(target.calls) >= wanted + 2, SETTLE_S, explain=conn.log)
        time.sleep(5 * POLL)
        secrets = expected(subs, ids)
        tally.take(target.calls, secrets)
        failed = conn.watch.log().count("failed") - failed_before
        (tmp_path / "connector.log").write_text(conn.log())
        assert conn.processes() == pids and conn.all_alive(pids), "a process was restarted"
    report(
        record_property, f"Redis restarted ({how})", len(ids), len(subs), tally, began,
        failed_rounds=failed,
    )  # fmt: skip
    assert set(tally.accepted) == set(secrets), "a delivery never arrived"
    assert set(tally.accepted.values()) == {1}, tally.accepted


# -- the connector restarted ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_the_connector_restarted_with_deliveries_pending_loses_nothing(
    tmp_path, record_property, how
):
    began = time.monotonic()
    tally = Tally()
    full = {
        "EVENTS_POLL_SECONDS": str(POLL),
        "EVENTS_QUEUED": "1",
        "HOOKS_WORKER": "1",
        "EVENTS_RETRY_SCHEDULE": "0.5,1,2,4,8,16",
    }
    env = sandbox(tmp_path / "data", **full)
    with Loopback() as target, watcher(tmp_path, "watch", **full) as watch:
        switch(target, 503)  # down: every delivery stays pending
        with gunicorn(env, workers=1, timeout=60) as (base, master):
            conn = Connector(base, master, watch)
            conn.make_pump()
            sub = conn.subscribe(target.url + "/hook")
            ids = [conn.publish(n) for n in (1, 2, 3)]
            wait_until(lambda: len(target.calls) >= 3, SETTLE_S, explain=conn.log)
            started = conn.processes()
            orphaned = False
            if how == "SIGKILL":  # the master alone, as the OOM killer would
                os.kill(master.pid, signal.SIGKILL)
                master.wait()
                wait_until(lambda: not alive(started["worker"]), SETTLE_S)
                orphaned = alive(started["consumer"])  # said in the figures, not a fault
            # leaving the block stops what is left, SIGTERM to the group (make run's Ctrl-C)
        with gunicorn(env, workers=1, timeout=60) as (base, master):
            conn = Connector(base, master, watch)
            conn.pump = (sub["filter"]["tenantId"], sub["filter"]["clientId"])
            ids += [conn.publish(n) for n in (4, 5)]
            healed = switch(target, 204)
            ids.append(conn.publish(6))
            secrets = expected([sub], ids)
            tally.take(target.calls[:healed], secrets, accepted=False)
            arrived = tally.follow(target, healed, secrets, len(ids))
            wait_until(arrived, SETTLE_S + QUEUE_AGAIN_AFTER, explain=conn.log)
            time.sleep(5 * POLL)
            arrived()
    report(
        record_property, f"connector restarted ({how})", len(ids), 1, tally, began,
        tries_refused=healed, consumer_left_running=orphaned,
    )  # fmt: skip
    assert set(tally.accepted) == set(secrets), "a delivery never arrived"
    assert set(tally.accepted.values()) == {1}, tally.accepted


# -- Redis down while a target answers ------------------------------------------------------


def test_redis_down_while_a_target_answers_sends_nothing_twice(tmp_path, record_property):
    # The target took the delivery, but its outcome could not be written: Redis was down.
    began = time.monotonic()
    tally = Tally()
    release = threading.Event()
    with (
        redis_server(tmp_path / "redis", options=PERSISTENT) as redisd,
        Loopback() as target,
        connector(tmp_path, REDIS_URL=redisd.url, EVENTS_DELIVERY_TIMEOUT="3") as conn,
    ):
        target.post("/hook", hold=release, times=1)
        target.post("/hook")
        sub = conn.subscribe(target.url + "/hook")
        ids = [conn.publish(1)]
        target.wait_for_calls(1, SETTLE_S)  # the delivery is in flight
        redisd.stop()
        release.set()  # and the target answers 200 while Redis is down
        time.sleep(REDIS_OUTAGE_S)
        redisd.start()
        ids.append(conn.publish(2))
        secrets = expected([sub], ids)
        arrived = tally.follow(target, 0, secrets, len(ids))
        wait_until(lambda: arrived() and conn.settled([sub], len(ids)), SETTLE_S, explain=conn.log)
        time.sleep(5 * POLL)
        arrived()
    report(record_property, "Redis down as a target answers", len(ids), 1, tally, began)
    assert set(tally.accepted) == set(secrets), "a delivery never arrived"
    assert set(tally.accepted.values()) == {1}, tally.accepted
