"""The watcher (connector/events/watcher.py): the durable cursor, one watcher per lease,
InstaMsg's 429, and a round cut off between keeping deliveries and moving the cursor."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from app import create_app
from connector.events import watcher as watcher_module
from connector.events.watcher import Watcher
from connector.upstream import client as upstream_client
from tests.events.conftest import call, publish, subscribe, verified
from tests.support.loopback import Loopback


@pytest.fixture
def catcher():
    with Loopback() as server:
        server.post("/hook")
        yield server


def test_a_new_watcher_carries_on_from_the_cursor(sandbox_settings, pump, catcher):
    app = create_app(sandbox_settings)
    client = app.test_client()
    sub = subscribe(client, pump, catcher.url + "/hook")
    publish(client, pump, 1)
    publish(client, pump, 2)
    app.extensions["events"].watcher(owner="w").round()
    publish(client, pump, 3)
    # a restart: another app and watcher over the same data directory
    again = create_app(sandbox_settings)
    again.extensions["events"].watcher(owner="w").round()
    ids = [b["data"]["id"] for b in verified(catcher, sub["secret"])]
    assert len(ids) == 3 and len(set(ids)) == 3


def test_a_round_cut_off_before_the_cursor_moved_sends_nothing_twice(
    sandbox_app, sandbox_client, pump, catcher, monkeypatch
):
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    publish(sandbox_client, pump, 1)
    publish(sandbox_client, pump, 2)
    events = sandbox_app.extensions["events"]
    w = events.watcher(owner="w")

    def killed(client, cursor):
        raise KeyboardInterrupt  # the process dies after keeping deliveries, before this

    monkeypatch.setattr(events.store, "set_cursor", killed)
    with pytest.raises(KeyboardInterrupt):
        w.round()
    monkeypatch.undo()
    publish(sandbox_client, pump, 3)
    w.round()
    w.round()
    sent = Counter(b["webhook-id"] for b in verified(catcher, sub["secret"]))
    assert len(sent) == 3 and set(sent.values()) == {1}


def test_two_watchers_on_one_store_poll_once(sandbox_app, sandbox_client, pump, catcher):
    subscribe(sandbox_client, pump, catcher.url + "/hook")
    publish(sandbox_client, pump, 1)
    events = sandbox_app.extensions["events"]
    first, second = events.watcher(owner="a"), events.watcher(owner="b")
    assert first.round() is True
    assert second.round() is False
    assert first.round() is True
    assert (first.polls, second.polls) == (2, 0)
    assert len(catcher.calls) == 1


def test_instamsgs_429_pauses_that_client_for_its_retry_after(
    sandbox_settings, sandbox_client, pump, catcher
):
    app = create_app(replace(sandbox_settings, retries=0))
    client = app.test_client()
    sub = subscribe(client, pump, catcher.url + "/hook")
    fault = {
        "fault": "429",
        "method": "GET",
        "path": f"/api/v1/tenants/{pump[0]}/clients/{pump[1]}/messages",
        "retry_after": 60,
        "times": 1,
    }
    assert client.post("/_sandbox/faults", json=fault).status_code == 201
    publish(client, pump, 1)
    w = app.extensions["events"].watcher(owner="w")
    w.round()
    w.round()
    assert w.polls == 1 and catcher.calls == []  # the second round waited, as asked
    (resume,) = w.paused.values()
    assert resume - time.time() > 50  # InstaMsg's Retry-After: 60
    w.paused.clear()  # the minute has passed
    w.round()
    assert w.polls == 2 and len(verified(catcher, sub["secret"])) == 1


def test_a_subscription_without_credentials_is_read_with_the_apps(sandbox_settings, pump, catcher):
    app = create_app(replace(sandbox_settings, app_credentials=("demo-key", "demo-secret")))
    client = app.test_client()
    body = {
        "event": "message.received",
        "filter": {"tenantId": pump[0], "clientId": pump[1]},
        "target_url": catcher.url + "/hook",
    }
    sub = client.post("/subscriptions", json=body).json
    publish(client, pump, 1)
    app.extensions["events"].watcher().round()
    assert len(verified(catcher, sub["secret"])) == 1


def test_events_watch_once_runs_one_round(sandbox_app, sandbox_client, pump, catcher):
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    publish(sandbox_client, pump, 1)
    ran = sandbox_app.test_cli_runner().invoke(args=["events", "watch", "--once"])
    assert ran.exit_code == 0, ran.output
    assert len(verified(catcher, sub["secret"])) == 1


def test_a_round_that_outlives_its_lease_stops_polling(
    sandbox_app, sandbox_client, pump, catcher, monkeypatch
):
    other = call(sandbox_client, "createClient", tenantId=pump[0], type="device",
                 name="valve", provisioningId="valve-1", pubTopics=["telemetry"])["id"]  # fmt: skip
    subscribe(sandbox_client, pump, catcher.url + "/hook")
    subscribe(sandbox_client, (pump[0], other), catcher.url + "/hook")
    events = sandbox_app.extensions["events"]
    answers = iter([True, True, False])  # the round's, the first client's, then lost
    monkeypatch.setattr(events.store, "lease", lambda *a, **k: next(answers))
    w = events.watcher(owner="w")
    assert w.round() is True
    assert w.polls == 1  # the second client is left to the watcher that holds the lease now


@pytest.mark.parametrize(
    ("message_ms", "wanted"),
    [(1_000_122, False), (1_000_123, True), (1_000_124, True)],
)
def test_a_message_of_the_subscriptions_own_millisecond_is_not_older(message_ms, wanted):
    from connector.events.watcher import matches

    subscription = {"created": 1_000.1239, "filter": {"tenantId": "t", "clientId": "c"}}
    assert matches(subscription, {"id": "1", "created_at": message_ms}) is wanted


def test_a_backlog_longer_than_one_answer_is_read_in_narrower_windows(
    sandbox_app, sandbox_client, pump, catcher, monkeypatch
):
    # Twelve messages of 2 KB where an answer may carry about four: the read from the cursor on
    # was refused every round, for ever, and the subscription got nothing more.
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    for number in range(1, 13):
        publish(sandbox_client, pump, number, payload=f"{number:02d}" + "x" * 2000)
    monkeypatch.setattr(upstream_client, "ANSWER_LIMIT", 4 * 2400)
    # Every window that ended before now is settled: an empty one is passed over at once.
    monkeypatch.setattr(watcher_module, "SETTLED_MS", 0, raising=False)
    w = sandbox_app.extensions["events"].watcher(owner="w")
    for _ in range(80):
        w.round()
        if len(catcher.calls) >= 12:
            break
    sent = Counter(b["data"]["payload"][:2] for b in verified(catcher, sub["secret"]))
    assert sent == Counter(f"{n:02d}" for n in range(1, 13))
    assert w.windows  # it read in windows (and widens them again as it catches up)


def test_a_stopped_watcher_gives_its_lease_up_for_the_next_one(sandbox_app):
    # make run's restart, a deploy: the new watcher polled only once the old lease ran out.
    events = sandbox_app.extensions["events"]
    old, new = events.watcher(owner="old"), events.watcher(owner="new")
    stop = threading.Event()
    old.round = lambda: (stop.set(), Watcher.round(old))[1]  # one round, then stopped
    old.run(stop)
    assert old.leading is True
    assert new.round() is True


def test_a_round_sends_batch_after_batch_until_nothing_is_due(
    sandbox_app, sandbox_client, pump, catcher, monkeypatch
):
    # One batch a round: more than MAX_DUE_PER_ROUND due waited for the next rounds (bench S8).
    monkeypatch.setattr(watcher_module, "MAX_DUE_PER_ROUND", 2)
    sub = subscribe(sandbox_client, pump, catcher.url + "/hook")
    for number in range(1, 6):
        publish(sandbox_client, pump, number)
    sandbox_app.extensions["events"].watcher(owner="w").round()
    sent = Counter(b["data"]["id"] for b in verified(catcher, sub["secret"]))
    assert len(sent) == 5 and set(sent.values()) == {1}
