"""The instant triggers' fixtures: a connector in sandbox mode (the embedded InstaMsg, so a
publish is a real message that getMessages lists), a tenant with one client, and a catcher:
a Loopback (tests/support/loopback.py) that answers every POST and verifies each with
``standardwebhooks``' own ``Webhook.verify``."""

from __future__ import annotations

from dataclasses import replace

import pytest
from standardwebhooks import Webhook

from app import create_app
from tests.support.upstream import APP

#: Fast rounds and a short retry schedule: a test waits for rounds by running them itself,
#: and each round sends what is due itself (the queued path: test_queued.py).
FAST = {
    "events_poll_seconds": 0.2,
    "events_retry_schedule": (0.05, 0.05, 0.05),
    "events_queued": False,
}


@pytest.fixture
def sandbox_settings(settings):
    return replace(settings, sandbox=True, **FAST)


@pytest.fixture
def sandbox_app(sandbox_settings):
    return create_app(sandbox_settings)


@pytest.fixture
def sandbox_client(sandbox_app):
    return sandbox_app.test_client()


def call(client, block, **args):
    answer = client.post(f"/blocks/{block}", json={**APP, **args})
    assert answer.status_code == 200, (block, answer.get_data(as_text=True))
    return answer.json["contextWrites"]["to"]


@pytest.fixture
def pump(sandbox_client):
    """A sandbox client that may publish on telemetry and alarms: (tenantId, clientId)."""
    tenant = call(sandbox_client, "createTenant", name="Farm", maxClients=5, maxMessages=1000)["id"]
    client = call(
        sandbox_client,
        "createClient",
        tenantId=tenant,
        type="device",
        name="pump",
        provisioningId="pump-1",
        pubTopics=["telemetry", "alarms"],
    )["id"]
    return tenant, client


def publish(client, pump, number, topic="telemetry", payload=None):
    tenant, ident = pump
    return call(
        client,
        "publishMessage",
        tenantId=tenant,
        clientId=ident,
        id=number,
        type="pub",
        topic=topic,
        payload=payload or f"reading {number}",
        qos=1,
    )["messageId"]


def subscribe(client, pump, target, topic=None, **extra):
    """POST /subscriptions for ``pump``'s new messages at ``target``; the 201's JSON."""
    flt = {"tenantId": pump[0], "clientId": pump[1]}
    if topic is not None:
        flt["topic"] = topic
    body = {"event": "message.received", "filter": flt, "target_url": target, **APP, **extra}
    answer = client.post("/subscriptions", json=body)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return answer.json


def verified(catcher, secret: str) -> list[dict]:
    """Every delivery the catcher received, each checked with Webhook.verify (which raises
    on a bad signature): the bodies, in arrival order, with their webhook-id."""
    hook = Webhook(secret)
    bodies = []
    for call_ in catcher.calls:
        sent = call_.request
        body = hook.verify(sent.body, dict(sent.headers))
        bodies.append({**body, "webhook-id": sent.headers["webhook-id"]})
    return bodies
