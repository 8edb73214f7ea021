"""``respond: queued``: 202 at once, the delivery recorded durably and run by the queue's job,
with the engine's rules on what is final, what waits and runs again, and what is
OUTCOME_UNKNOWN. The queue here is Huey's in-memory one, its jobs run by the test one at a
time (the real consumer runs in tests/hooks/test_queue_faults.py)."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests
from huey import MemoryHuey

from app import create_app
from connector.hooks.queue import IDLE_WAIT_MAX, Queue
from tests.support.upstream import INSTAMSG, TOKEN
from tests.support.webhooks import fixture, github_headers

MESSAGES = INSTAMSG + "/api/v1/tenants/t/clients/c/messages"
LOCATION = {"Location": "/api/v1/tenants/t/clients/c/messages/m-1"}
PUSH = fixture("github_push.json")
HOOK = {
    "block": "publishMessage",
    "args": {"accessToken": TOKEN, "tenantId": "t", "clientId": "c", "id": 7, "type": "pub"},
    "map": {"topic": "'builds'", "payload": "body.head_commit.message", "qos": "`1`"},
    "verify": {"scheme": "github"},
    "respond": "queued",
}


@pytest.fixture
def app(settings):
    app = create_app(replace(settings, hook_retries=3, hook_retry_base=0.01))
    service = app.extensions["instamsg_hooks"]
    service._queue = Queue(service, service.engine.settings, huey=MemoryHuey("test-hooks"))
    return app


@pytest.fixture
def huey(app):
    return app.extensions["instamsg_hooks"].queue.huey


def run_jobs(huey, limit=20):
    """Run every job, waiting ones and scheduled retries alike (as if their time had come),
    until none is left."""
    ran = 0
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)
    while ran < limit:
        task = huey.dequeue()
        if task is None:
            due = huey.read_schedule(later)
            if not due:
                return ran
            for task in due:
                huey.enqueue(task)
            continue
        huey.execute(task, later)
        ran += 1
    raise AssertionError("jobs kept coming")


def deliver(client, made, delivery="d-1"):
    return client.post(
        made["url"], data=PUSH, headers=github_headers(made["secret"], PUSH, delivery)
    )


def record_of(client, made):
    return client.get(f"/hooks/{made['id']}/deliveries").json[0]


def test_a_queued_delivery_is_answered_202_and_sent_five_times_runs_once(client, huey, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = client.post("/hooks", json=HOOK).json
    answers = [deliver(client, made) for _ in range(5)]
    assert [a.status_code for a in answers] == [202] * 5
    assert answers[0].json == {"delivery": "d-1", "status": "queued"}
    assert huey.pending_count() == 1  # the sender's retries were answered from the record
    assert len(mocked.calls) == 0  # nothing ran while the sender waited
    assert run_jobs(huey) == 1
    assert len(mocked.calls) == 1
    assert json.loads(mocked.calls[0].request.body)["payload"].startswith("Close the valve")
    record = record_of(client, made)
    assert (record["status"], record["attempts"], record["http_status"]) == ("done", 1, 200)
    assert deliver(client, made).json == {"delivery": "d-1", "status": "done"}


def test_a_429_waits_and_runs_again_until_instamsg_heals(client, huey, mocked_in_order):
    for _ in range(2):
        mocked_in_order.post(MESSAGES, status=429)
    mocked_in_order.post(MESSAGES, status=201, headers=LOCATION)
    made = client.post("/hooks", json=HOOK).json
    deliver(client, made)
    assert run_jobs(huey) == 3
    record = record_of(client, made)
    assert (record["status"], record["attempts"]) == ("done", 3)
    assert len(mocked_in_order.calls) == 3  # two refusals that ran nothing, one publish


def test_a_delivery_that_never_heals_fails_after_its_retries(client, huey, mocked):
    mocked.post(MESSAGES, status=429)
    made = client.post("/hooks", json=HOOK).json
    deliver(client, made)
    assert run_jobs(huey) == 4  # the first try and hook_retries=3
    record = record_of(client, made)
    assert (record["status"], record["code"], record["attempts"]) == ("failed", "API_ERROR", 4)


def test_a_5xx_during_a_publish_is_outcome_unknown_and_never_run_again(client, huey, mocked):
    mocked.post(MESSAGES, status=500)
    made = client.post("/hooks", json=HOOK).json
    deliver(client, made)
    assert run_jobs(huey) == 1
    assert record_of(client, made)["status"] == "outcome_unknown"
    service = client.application.extensions["instamsg_hooks"]
    assert service.sweep(stale_only=False) == 0  # final: nothing to queue again
    service.queue.enqueue(made["id"], "d-1", "d-1")  # a stray duplicate job changes nothing
    run_jobs(huey)
    assert len(mocked.calls) == 1 and record_of(client, made)["attempts"] == 1


def test_a_refusal_is_final_at_once(client, huey, nothing_sent):
    made = client.post("/hooks", json={**HOOK, "map": {**HOOK["map"], "qos": "`7`"}}).json
    deliver(client, made)
    assert run_jobs(huey) == 1
    record = record_of(client, made)
    assert (record["status"], record["code"]) == ("failed", "INVALID_FIELDS")


def test_an_unreadable_payload_is_422_at_once_and_queues_nothing(client, huey):
    made = client.post("/hooks", json={**HOOK, "map": {**HOOK["map"], "payload": "body.nope"}}).json
    answer = deliver(client, made)
    assert answer.status_code == 422 and huey.pending_count() == 0
    assert record_of(client, made)["status"] == "failed"


def test_a_record_left_running_is_queued_again_and_runs_once(client, huey, mocked):
    """What a consumer killed mid-run leaves: a record not final and no job. The sweep queues
    it again; its key makes a second run of a finished call a replay."""
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = client.post("/hooks", json=HOOK).json
    deliver(client, made)
    huey.dequeue()  # the job a killed consumer took with it
    service = client.application.extensions["instamsg_hooks"]
    assert service.sweep(stale_only=True) == 0  # not yet past a call's lease
    assert service.sweep(stale_only=False) == 1
    run_jobs(huey)
    assert len(mocked.calls) == 1 and record_of(client, made)["status"] == "done"


def test_instamsg_unreachable_waits_and_runs_again_until_it_answers(client, huey, mocked_in_order):
    for _ in range(3):  # refused connections: nothing was sent
        mocked_in_order.post(MESSAGES, body=requests.ConnectionError("connection refused"))
    mocked_in_order.post(MESSAGES, status=201, headers=LOCATION)
    made = client.post("/hooks", json=HOOK).json
    deliver(client, made)
    assert run_jobs(huey) == 4
    record = record_of(client, made)
    assert (record["status"], record["attempts"], record["http_status"]) == ("done", 4, 200)


def test_the_queue_depth_is_in_metrics(client, huey, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = client.post("/hooks", json=HOOK).json
    for n in range(3):
        deliver(client, made, f"d-{n}")
    assert "instamsg_connector_hook_queue_depth 3.0" in client.get("/metrics").text
    run_jobs(huey)
    assert "instamsg_connector_hook_queue_depth 0.0" in client.get("/metrics").text


@pytest.mark.parametrize(("retry_after", "at_least"), [(None, 1), ("30", 30)])
def test_a_429_waits_at_least_what_instamsg_says(client, huey, mocked, retry_after, at_least):
    headers = {"Retry-After": retry_after} if retry_after else {}
    mocked.post(MESSAGES, status=429, headers=headers)
    made = client.post("/hooks", json=HOOK).json
    deliver(client, made)
    huey.execute(huey.dequeue())
    (retry,) = huey.scheduled()
    waits = (retry.eta - datetime.now(UTC).replace(tzinfo=None)).total_seconds()
    assert at_least - 2 < waits <= at_least
    assert record_of(client, made)["status"] == "retrying"


def test_a_consumer_looks_at_an_empty_queue_at_least_every_half_second(client, huey):
    # Huey's own default let a worker wait up to 10 s between looks after a quiet spell, and
    # a delivery queued then waited as long (bench S8).
    consumer = client.application.extensions["instamsg_hooks"].queue.consumer(2)
    assert consumer.max_delay == IDLE_WAIT_MAX <= 0.5
