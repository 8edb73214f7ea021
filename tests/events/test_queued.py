"""Deliveries as queued work: the watcher queues each due delivery as a job on the hooks'
Huey queue, whose consumer sends it (connector/events/service.py, watcher.py)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import pytest
from huey import MemoryHuey

from app import create_app
from connector.events.service import TASK_NAME
from tests.events.conftest import FAST, publish, subscribe, verified
from tests.support.loopback import Loopback


@pytest.fixture
def queued_app(sandbox_settings):
    return create_app(replace(sandbox_settings, events_queued=True))


def test_the_hooks_queue_carries_the_delivery_task(queued_app):
    huey = queued_app.extensions["instamsg_hooks"].queue.huey
    task = queued_app.extensions["events"]._task
    assert task.huey is huey and task.name == TASK_NAME  # the consumer of hooks runs it too
    assert queued_app.extensions["events"].watcher().enqueue is not None


def test_queued_deliveries_are_sent_by_the_job_once_each(queued_app, pump):
    client = queued_app.test_client()
    events = queued_app.extensions["events"]
    jobs = MemoryHuey("events-test", immediate=True)  # each job runs as it is queued
    events.queue_source = lambda: events.register(jobs)
    with Loopback() as catcher:
        catcher.post("/hook")
        sub = subscribe(client, pump, catcher.url + "/hook")
        for n in range(1, 6):
            publish(client, pump, n)
        w = events.watcher(owner="w")
        w.round()
        w.round()  # nothing is queued twice, and nothing is sent twice
        sent = Counter(b["webhook-id"] for b in verified(catcher, sub["secret"]))
    assert len(sent) == 5 and set(sent.values()) == {1}
    assert len(w.queued) == 5


def test_a_job_queued_twice_sends_once(queued_app, pump):
    client = queued_app.test_client()
    events = queued_app.extensions["events"]
    with Loopback() as catcher:
        catcher.post("/hook")
        subscribe(client, pump, catcher.url + "/hook")
        publish(client, pump, 1)
        sent = []
        w = events.watcher(owner="w")
        w.enqueue = sent.append  # the jobs, held back
        w.round()
        (ident,) = sent
        events.run_delivery(ident)
        events.run_delivery(ident)  # the same job again (a sweep, a second watcher)
        assert len(catcher.calls) == 1


def test_a_failed_try_is_queued_again_when_its_retry_is_due(queued_app, pump):
    # The schedule's next wait, not QUEUE_AGAIN_AFTER (a minute), says when a failed
    # delivery is tried again: queued, its first retry came a minute late, not after 5 s.
    client = queued_app.test_client()
    events = queued_app.extensions["events"]
    with Loopback() as catcher:
        catcher.post("/hook", status=503, times=1)
        catcher.post("/hook")
        subscribe(client, pump, catcher.url + "/hook")
        publish(client, pump, 1)
        sent = []
        w = events.watcher(owner="w")
        w.enqueue = sent.append  # the jobs, run by the test
        w.round()
        events.run_delivery(sent[-1])  # the target answers 503: retried after 0.05 s
        time.sleep(2 * FAST["events_retry_schedule"][0])
        w.round()
        assert len(sent) == 2  # queued again as soon as its retry was due
        events.run_delivery(sent[-1])
        assert [c.request.headers["webhook-id"] for c in catcher.calls] == sent
