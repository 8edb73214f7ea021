"""The instant trigger (InstaMsgInstantTrigger) in the real n8n 2.41.1, against the connector in
sandbox mode with its event watcher running, all in the loopback-only namespace of
tests/faces/test_n8n.py's ``lab``.

Published and `n8n start`ed, the workflow subscribes its webhook URL through the connector;
each message then reaches n8n as a signed delivery, and the workflow echoes it to a second
client, where the test reads it back (one echo per execution). The connector restarted in
between (gunicorn and the watcher, as `make run` runs them) loses nothing and sends nothing
twice. Unpublished from the editor's REST API, the subscription is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import requests

from tests.faces.test_n8n import (  # noqa: F401  (lab: the module-scoped fixture, reused)
    CREDENTIALS,
    Editor,
    echo,
    lab,
    node,
    ready,
    restart_connector,
    wait_for,
    workflow,
)
from tests.support.n8n_farm import Farm
from tests.support.servers import ROOT, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

INSTANT = "CUSTOM.instaMsgInstantTrigger"
#: The watcher's poll interval here (the default is 5 s): the test waits less for each round.
POLL_SECONDS = "1"
#: How long messages may take to come through, all told: far above the few seconds they
#: take, a watcher's lease running out after a kill included (a bound against hanging, not
#: a measure of speed).
ARRIVAL_WAIT = 90
MESSAGES = 5


class EventWatcher:
    """`flask --app app events watch` over the lab connector's data (sandbox and event store),
    sending the deliveries itself (no queue consumer), in the namespace; stopped and started
    again as `make run` does (SIGTERM), or killed."""

    def __init__(self, n8n, log):
        self.n8n, self.log, self.process = n8n, log, None
        self.env = {
            **os.environ,
            "INSTAMSG_SANDBOX": "1",
            "INSTAMSG_DATA_DIR": str(n8n.folder.parent / "connector"),
            "EVENTS_POLL_SECONDS": POLL_SECONDS,
            "EVENTS_QUEUED": "0",
        }

    def start(self) -> None:
        self.process = self.n8n.ns.run(
            subprocess.Popen,
            [sys.executable, "-m", "flask", "--app", "app", "events", "watch"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        stop(self.process)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")


@contextmanager
def event_watcher(n8n):
    """A running EventWatcher (its output, of every start, in one file), stopped at the end."""
    with open(n8n.folder.parent / "watcher.log", "w+b") as log:
        watcher = EventWatcher(n8n, log)
        watcher.start()
        try:
            yield watcher
        finally:
            watcher.stop()


def subscriptions(n8n, client_id) -> list[dict]:
    listed = n8n.ns.run(requests.get, f"{n8n.base}/subscriptions", timeout=30)
    assert listed.status_code == 200, listed.text[:2000]
    return [s for s in listed.json() if s["filter"]["clientId"] == client_id]


def test_a_published_instant_trigger_runs_once_per_message_across_restarts_and_unsubscribes(lab):  # noqa: F811
    # n8n's webhook URL on the address it listens on (its default names localhost).
    lab.env["WEBHOOK_URL"] = f"http://127.0.0.1:{lab.env['N8N_PORT']}/"
    farm = Farm(lab)
    flow = workflow(
        "instant",
        node(
            "New message",
            {"tenantId": farm.tenant, "clientId": farm.source, "topic": "telemetry"},
            kind=INSTANT,
            webhookId="instamsg-instant-test",
            credentials=CREDENTIALS,
        ),
        echo(farm, "={{ 'got ' + $json.payload }}"),
    )
    lab.import_file("workflow", "instant.json", flow)
    published = lab.cli("publish:workflow", "--id=instant")
    assert published.returncode == 0, published.stdout + published.stderr
    assert subscriptions(lab, farm.source) == []

    said = []

    def say(count):
        for _ in range(count):
            said.append(f"reading {len(said) + 1}")
            farm.say(said[-1])

    with event_watcher(lab) as watcher, lab.server() as (process, output):

        def echoed():
            """The echoes so far, sorted; a message echoed twice (run twice) fails at once."""
            echoes = sorted(farm.echoes())
            twice = sorted({e for e in echoes if echoes.count(e) > 1})
            assert not twice, f"started more than one execution: {twice}"
            return echoes

        def all_through():
            """Every message said so far has started one execution (echoed once), no more."""
            expected = sorted(f"got {payload}" for payload in said)
            logs = lambda: output()[-2000:] + watcher.output()[-2000:]  # noqa: E731
            wait_for(echoed, expected, logs, ARRIVAL_WAIT)

        ready(process, output)
        # Published: n8n's create() made the subscription, to this workflow's webhook URL.
        wait_until(
            lambda: len(subscriptions(lab, farm.source)) == 1,
            120,
            every=1,
            explain=lambda: output()[-3000:],
        )
        (made,) = subscriptions(lab, farm.source)
        assert made["target_url"].startswith(lab.env["WEBHOOK_URL"] + "webhook/")
        assert made["filter"]["topic"] == "telemetry" and made["credentials"] == "given"

        started = time.monotonic()
        say(MESSAGES)
        all_through()
        print(f"{MESSAGES} messages through n8n in {time.monotonic() - started:.1f} s")

        # The connector restarted as `make run` is, SIGTERM then the same port and data dir:
        # what was published while its watcher was down comes through once it is back, and
        # nothing already delivered comes again.
        started = time.monotonic()
        watcher.stop()
        say(2)
        restart_connector(lab)
        watcher.start()
        say(1)
        all_through()
        print(f"restarted: {len(said)} messages through in {time.monotonic() - started:.1f} s")
        # The watcher killed -9 (its lease runs out before the next one polls): the same.
        started = time.monotonic()
        watcher.kill()
        say(1)
        watcher.start()
        all_through()
        print(f"killed: {len(said)} messages through in {time.monotonic() - started:.1f} s")
        # Each once: one more message comes through alone, a round after every one before it,
        # so whatever a restart made the watcher send again has been sent by now.
        say(1)
        all_through()

        # Unpublished from the editor: n8n's delete() removed the subscription.
        editor = Editor(lab, lab.env["N8N_PORT"])
        editor.set_up_owner()
        editor.call("POST", "/workflows/instant/deactivate", {})
        wait_until(
            lambda: subscriptions(lab, farm.source) == [],
            60,
            every=1,
            explain=lambda: output()[-3000:],
        )
