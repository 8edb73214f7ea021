"""The instant trigger (InstaMsgInstantTrigger) in the real n8n 2.41.1, against the connector in
sandbox mode with its event watcher running, all in the loopback-only namespace of
tests/faces/test_n8n.py's ``lab``.

Published and `n8n start`ed, the workflow subscribes its webhook URL through the connector;
each message then reaches n8n as a signed delivery, and the workflow echoes it to a second
client, where the test reads it back (one echo per execution). Unpublished from the editor's
REST API, the subscription is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import requests

from tests.faces.test_n8n import (  # noqa: F401  (lab: the module-scoped fixture, reused)
    CREDENTIALS,
    Editor,
    call,
    lab,
    node,
    ready,
    wait_for,
    workflow,
)
from tests.support.servers import ROOT, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

INSTANT = "CUSTOM.instaMsgInstantTrigger"
#: The watcher's poll interval here (the default is 5 s): the test waits less for each round.
POLL_SECONDS = "1"
#: How long the five messages may take to come through, all told: far above the few seconds
#: they take (a bound against hanging, not a measure of speed).
ARRIVAL_WAIT = 90
MESSAGES = 5


@contextmanager
def event_watcher(n8n):
    """`flask --app app events watch` over the lab connector's data (sandbox and event store),
    sending the deliveries itself (no queue consumer), in the namespace."""
    log = open(n8n.folder.parent / "watcher.log", "w+b")  # noqa: SIM115 (closed below)
    env = {
        **os.environ,
        "INSTAMSG_SANDBOX": "1",
        "INSTAMSG_DATA_DIR": str(n8n.folder.parent / "connector"),
        "EVENTS_POLL_SECONDS": POLL_SECONDS,
        "EVENTS_QUEUED": "0",
    }
    process = n8n.ns.run(
        subprocess.Popen,
        [sys.executable, "-m", "flask", "--app", "app", "events", "watch"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield lambda: (log.seek(0), log.read().decode("utf-8", "replace"))[1]
    finally:
        stop(process)
        log.close()


def subscriptions(n8n, client_id) -> list[dict]:
    listed = n8n.ns.run(requests.get, f"{n8n.base}/subscriptions", timeout=30)
    assert listed.status_code == 200, listed.text[:2000]
    return [s for s in listed.json() if s["filter"]["clientId"] == client_id]


def test_a_published_instant_trigger_subscribes_runs_once_per_message_and_unsubscribes(lab):  # noqa: F811
    # n8n's webhook URL on the address it listens on (its default names localhost).
    lab.env["WEBHOOK_URL"] = f"http://127.0.0.1:{lab.env['N8N_PORT']}/"
    run = lab.ns.run
    tenant = run(call, lab.base, "createTenant", name="Farm", maxClients=10, maxMessages=1000)
    stamp = str(time.time_ns())
    ids = {}
    for name, topics in (("source", ["telemetry"]), ("sink", ["seen"])):
        made = run(
            call,
            lab.base,
            "createClient",
            tenantId=tenant["id"],
            type="device",
            name=name,
            provisioningId=f"instant-{name}-{stamp}",
            pubTopics=topics,
        )
        ids[name] = made["id"]

    def say(number):
        run(
            call,
            lab.base,
            "publishMessage",
            tenantId=tenant["id"],
            clientId=ids["source"],
            id=number,
            type="pub",
            topic="telemetry",
            payload=f"reading {number}",
            qos=1,
        )

    def seen():
        listed = run(call, lab.base, "getMessages", tenantId=tenant["id"], clientId=ids["sink"])
        return sorted(m["payload"] for m in listed)

    flow = workflow(
        "instant",
        node(
            "New message",
            {"tenantId": tenant["id"], "clientId": ids["source"], "topic": "telemetry"},
            kind=INSTANT,
            webhookId="instamsg-instant-test",
            credentials=CREDENTIALS,
        ),
        node(
            "Echo",
            {
                "resource": "messages",
                "operation": "publishMessage",
                "tenantId": tenant["id"],
                "clientId": ids["sink"],
                "type": "pub",
                "topic": "seen",
                "payload": "={{ 'got ' + $json.payload }}",
                "qos": 1,
            },
        ),
    )
    lab.import_file("workflow", "instant.json", flow)
    published = lab.cli("publish:workflow", "--id=instant")
    assert published.returncode == 0, published.stdout + published.stderr
    assert subscriptions(lab, ids["source"]) == []

    with event_watcher(lab) as watcher_log, lab.server() as (process, output):
        ready(process, output)
        # Published: n8n's create() made the subscription, to this workflow's webhook URL.
        wait_until(
            lambda: len(subscriptions(lab, ids["source"])) == 1,
            120,
            every=1,
            explain=lambda: output()[-3000:],
        )
        (made,) = subscriptions(lab, ids["source"])
        assert made["target_url"].startswith(lab.env["WEBHOOK_URL"] + "webhook/")
        assert made["filter"]["topic"] == "telemetry" and made["credentials"] == "given"

        started = time.monotonic()
        for number in range(1, MESSAGES + 1):
            say(number)
        expected = sorted(f"got reading {n}" for n in range(1, MESSAGES + 1))
        wait_for(seen, expected, lambda: output()[-2000:] + watcher_log()[-2000:], ARRIVAL_WAIT)
        print(f"{MESSAGES} messages through n8n in {time.monotonic() - started:.1f} s")
        # Each once: a few more watcher rounds send nothing again.
        time.sleep(5 * float(POLL_SECONDS) + 2)
        assert seen() == expected

        # Unpublished from the editor: n8n's delete() removed the subscription.
        editor = Editor(lab, lab.env["N8N_PORT"])
        editor.set_up_owner()
        editor.call("POST", "/workflows/instant/deactivate", {})
        wait_until(
            lambda: subscriptions(lab, ids["source"]) == [],
            60,
            every=1,
            explain=lambda: output()[-3000:],
        )
