"""Deliveries (connector/events/deliveries.py), end to end in one process: messages published
through the sandbox, the watcher's rounds run by the test, a loopback catcher that verifies
every delivery with standardwebhooks' Webhook.verify."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from app import create_app
from connector.events import deliveries
from connector.events.deliveries import delivery_id
from connector.state.store import store_fault
from tests.events.conftest import publish, subscribe, verified
from tests.support.loopback import Loopback, closed_url


@pytest.fixture
def catcher():
    with Loopback() as server:
        yield server


def watcher(app):
    return app.extensions["events"].watcher(owner="test")


def rounds_until(w, done, most=50):
    """Run rounds (each after the retry waits have passed) until ``done()``."""
    for _ in range(most):
        w.round()
        if done():
            return
        time.sleep(0.06)
    raise AssertionError("not done after the rounds allowed")


def test_five_messages_make_five_deliveries_each_once(sandbox_app, sandbox_client, pump, catcher):
    catcher.post("/hook")
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    ids = [publish(sandbox_client, pump, n) for n in range(1, 6)]
    w = watcher(sandbox_app)
    w.round()
    w.round()
    bodies = verified(catcher, sub["secret"])
    assert [b["data"]["id"] for b in bodies] == ids
    assert {b["type"] for b in bodies} == {"message.received"}
    assert {b["subscription"] for b in bodies} == {sub["id"]}
    assert [b["webhook-id"] for b in bodies] == [delivery_id(sub["id"], i) for i in ids]
    assert bodies[0]["data"]["payload"] == "reading 1"
    log = sandbox_client.get(f"/subscriptions/{sub['id']}/deliveries").json
    assert [d["message"] for d in log] == ids[::-1]  # newest first
    assert {d["state"] for d in log} == {"delivered"}


def test_n_subscribers_of_one_client_cost_one_poll(sandbox_app, sandbox_client, pump, catcher):
    catcher.post("*")
    subs = [subscribe(sandbox_client, pump, f"{catcher.url}/s{n}") for n in range(3)]
    publish(sandbox_client, pump, 1)
    w = watcher(sandbox_app)
    w.round()
    assert w.polls == 1
    assert sorted(urlsplit(c.request.url).path for c in catcher.calls) == ["/s0", "/s1", "/s2"]
    for n, sub in enumerate(subs):
        # each subscriber's own secret signs its copy
        mine = [c for c in catcher.calls if c.request.url.endswith(f"/s{n}")]
        assert len(verified(type("C", (), {"calls": mine}), sub["secret"])) == 1


def test_a_topic_filter_and_nothing_older_than_the_subscription(
    sandbox_app, sandbox_client, pump, catcher
):
    catcher.post("/hook")
    publish(sandbox_client, pump, 1, topic="alarms")  # before anyone subscribed
    time.sleep(0.002)
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook", topic="alarms")
    publish(sandbox_client, pump, 2, topic="telemetry")
    wanted = publish(sandbox_client, pump, 3, topic="alarms")
    watcher(sandbox_app).round()
    assert [b["data"]["id"] for b in verified(catcher, sub["secret"])] == [wanted]


def test_the_target_down_then_up_gets_each_message_once(sandbox_app, sandbox_client, pump, catcher):
    catcher.post("/hook", status=503, times=8)  # down: eight refusals, then up
    catcher.post("/hook", status=204)
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    ids = [publish(sandbox_client, pump, n) for n in range(1, 6)]
    w = watcher(sandbox_app)
    log = f"/subscriptions/{sub['id']}/deliveries"

    def all_delivered():
        return {d["state"] for d in sandbox_client.get(log).json} == {"delivered"}

    rounds_until(w, all_delivered)
    accepted = Counter(
        c.request.headers["webhook-id"] for c in catcher.calls[8:]
    )  # the calls after the target came up
    assert sorted(accepted) == sorted(delivery_id(sub["id"], i) for i in ids)
    assert set(accepted.values()) == {1}
    verified(catcher, sub["secret"])  # every try, refused or not, was signed
    assert sandbox_client.get(f"/subscriptions/{sub['id']}").json["failing_since"] is None


def test_a_410_removes_the_subscription(sandbox_app, sandbox_client, pump, catcher):
    catcher.post("/hook", status=410)
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    publish(sandbox_client, pump, 1)
    publish(sandbox_client, pump, 2)
    w = watcher(sandbox_app)
    w.round()
    assert sandbox_client.get(f"/subscriptions/{sub['id']}").status_code == 404
    w.round()
    assert len(catcher.calls) == 1  # nothing more to a subscriber that has gone


def test_a_redirect_is_not_followed(sandbox_app, sandbox_client, pump, catcher):
    catcher.post("/hook", status=307, headers={"Location": catcher.url + "/elsewhere"})
    catcher.post("/elsewhere")
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    publish(sandbox_client, pump, 1)
    watcher(sandbox_app).round()
    assert [urlsplit(c.request.url).path for c in catcher.calls] == ["/hook"]
    (record,) = sandbox_client.get(f"/subscriptions/{sub['id']}/deliveries").json
    assert record["state"] == "retrying" and record["last"]["status"] == 307


def test_a_spent_schedule_fails_the_delivery(sandbox_app, sandbox_client, pump, catcher):
    catcher.post("/hook", status=500)
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    publish(sandbox_client, pump, 1)
    log = f"/subscriptions/{sub['id']}/deliveries"
    rounds_until(watcher(sandbox_app), lambda: sandbox_client.get(log).json[0]["state"] == "failed")
    tries = len(sandbox_app.extensions["events"].settings.events_retry_schedule) + 1
    assert len(catcher.calls) == tries
    assert sandbox_client.get(log).json[0]["attempts"] == tries


def test_failing_for_disable_after_disables_the_subscription(
    sandbox_settings, pump, sandbox_client, catcher
):
    app = create_app(replace(sandbox_settings, events_disable_after=0.1))
    client = app.test_client()
    catcher.post("/hook", status=500)
    sub = subscribe(client, pump, catcher.url + "/hook")
    publish(client, pump, 1)
    w = watcher(app)
    rounds_until(w, lambda: client.get(f"/subscriptions/{sub['id']}").json["disabled"])
    disabled = client.get(f"/subscriptions/{sub['id']}").json["disabled"]
    assert "EVENTS_DISABLE_AFTER" in disabled["reason"]
    sent, polls = len(catcher.calls), w.polls
    publish(client, pump, 2)
    w.round()
    assert len(catcher.calls) == sent and w.polls == polls  # neither polled nor sent


def test_redeliver_sends_a_delivery_again_with_its_webhook_id(
    sandbox_app, sandbox_client, pump, catcher
):
    catcher.post("/hook")
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    publish(sandbox_client, pump, 1)
    w = watcher(sandbox_app)
    w.round()
    (record,) = sandbox_client.get(f"/subscriptions/{sub['id']}/deliveries").json
    again = sandbox_client.post(f"/subscriptions/{sub['id']}/deliveries/{record['id']}/redeliver")
    assert again.status_code == 202 and again.json["state"] == "pending"
    w.round()
    assert [b["webhook-id"] for b in verified(catcher, sub["secret"])] == [record["id"]] * 2
    missing = sandbox_client.post(f"/subscriptions/{sub['id']}/deliveries/msg_nope/redeliver")
    assert missing.status_code == 404


@pytest.mark.parametrize("limit", ["0", "101", "x", "-1"])
def test_the_log_limit_is_bounded(sandbox_client, pump, limit):
    sub = subscribe(sandbox_client, pump, "http://127.0.0.1:9/hook")
    answer = sandbox_client.get(f"/subscriptions/{sub['id']}/deliveries?limit={limit}")
    assert answer.status_code == 400


def test_a_target_slower_than_the_time_limit_is_a_failed_try(
    sandbox_settings, pump, sandbox_client, catcher
):
    app = create_app(replace(sandbox_settings, events_delivery_timeout=0.2))
    client = app.test_client()
    release = threading.Event()
    catcher.post("/hook", hold=release)  # answers only when the test lets it
    sub = subscribe(client, pump, catcher.url + "/hook")
    publish(client, pump, 1)
    try:
        watcher(app).round()
    finally:
        release.set()
    (record,) = client.get(f"/subscriptions/{sub['id']}/deliveries").json
    assert record["state"] == "retrying" and record["last"]["status"] is None
    assert "ReadTimeout" in record["last"]["note"]


def test_the_target_refusing_connections_then_listening_gets_each_once(
    sandbox_app, sandbox_client, pump
):
    down = closed_url()  # nothing listens there: connections are refused
    sub = subscribe(sandbox_client, pump, down + "/hook")
    ids = [publish(sandbox_client, pump, n) for n in range(1, 4)]
    w = watcher(sandbox_app)
    w.round()
    log = f"/subscriptions/{sub['id']}/deliveries"
    assert {d["state"] for d in sandbox_client.get(log).json} == {"retrying"}
    assert "ConnectionError" in sandbox_client.get(log).json[0]["last"]["note"]
    up = Loopback(port=urlsplit(down).port).start()  # the target comes up at that URL
    try:
        up.post("/hook")
        rounds_until(w, lambda: {d["state"] for d in sandbox_client.get(log).json} == {"delivered"})
        sent = Counter(c.request.headers["webhook-id"] for c in up.calls)
        assert sorted(sent) == sorted(delivery_id(sub["id"], i) for i in ids)
        assert set(sent.values()) == {1}
    finally:
        up.close()


def test_a_target_dripping_its_answer_is_cut_off_at_the_time_limit(sandbox_settings, pump, catcher):
    app = create_app(replace(sandbox_settings, events_delivery_timeout=0.3))
    client = app.test_client()
    # one byte each 0.05 s: no read ever waits the 0.3 s timeout, and the head alone would
    # take seconds
    catcher.post("/hook", drip=0.05, drip_head=True, body=b"ok" * 50)
    sub = subscribe(client, pump, catcher.url + "/hook")
    publish(client, pump, 1)
    watcher(app).round()
    (record,) = client.get(f"/subscriptions/{sub['id']}/deliveries").json
    assert record["state"] == "retrying" and record["last"]["status"] is None
    assert "EVENTS_DELIVERY_TIMEOUT" in record["last"]["note"]


class FirstSaveFails:
    """A store whose first write of a subscription fails (Redis stopping), then recovers."""

    def __init__(self):
        self.kept = {"id": "s", "secret": "whsec_" + "A" * 32, "target_url": "http://t/"}
        self.kept["failing_since"] = 100.0  # it had been failing
        self.record = deliveries.new_record({"id": "s"}, {"id": "m1"}, 1000.0)
        self.fails = 1

    def take_delivery(self, *args):
        return True

    def delivery(self, ident):
        return dict(self.record)

    def subscription(self, ident):
        return dict(self.kept)

    def save_subscription(self, subscription):
        if self.fails:
            self.fails -= 1
            raise store_fault("redis", "subscription", ConnectionError())
        self.kept = dict(subscription)

    def save_delivery(self, record):
        self.record = dict(record)


def test_an_outcome_written_again_after_a_store_fault_is_written_whole(monkeypatch):
    # The retried write started from the dicts the failed try had changed: failing_since was
    # already None there, so it was never cleared in the store, and the next failure disabled
    # a subscription that had just succeeded.
    monkeypatch.setattr(deliveries, "post", lambda *args, **kw: 200)
    monkeypatch.setattr(deliveries, "OUTCOME_RETRY_S", 0.01)
    store = FirstSaveFails()
    settings = SimpleNamespace(
        events_delivery_timeout=5, events_disable_after=3600, events_retry_schedule=[1, 2]
    )
    sent = deliveries.Deliverer(store, settings, clock=lambda: 1000.0).run(store.record["id"])
    assert sent["state"] == "delivered"
    assert store.kept["failing_since"] is None
