"""The watcher: one poll per watched client for all its subscriptions, and the deliveries.

Each round (every EVENTS_POLL_SECONDS) the watcher that holds the fleet-wide lease reads each
watched client's messages with getMessages, through the engine (its validation, managed
tokens, retries and outcome table), from the client's durable cursor on. For each new message
and each matching subscription it keeps one delivery record (its id is the ``webhook-id``, so a
second keep of the same one changes nothing), and only then moves the cursor past the message.
A watcher killed at any point therefore loses nothing and records nothing twice: the next
round reads from the cursor last written again. Then it sends the deliveries that are due.

- One watcher fleet-wide: the lease ``watcher`` in the state store (Redis when instances share
  one), renewed each round; another watcher waits until it runs out (LEASE_ROUNDS rounds).
- A client's cursor is the time of the newest message handed on and the ids seen at that very
  millisecond, read again from there (``start`` is inclusive); a message older than a
  subscription is never delivered to it.
- InstaMsg's 429 (or any answer with Retry-After) pauses that client's polls for as long
  as it asks; other clients carry on.
- Subscriptions with their own clientKey and clientSecret are read with them (the oldest
  such subscription's, for a client several watch); else with INSTAMSG_CLIENT_KEY/SECRET.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from connector import logs, metrics
from connector.engine import Invocation
from connector.engine.arguments import held_credentials
from connector.errors import ConnectorError
from connector.events.deliveries import Deliverer, new_record

LEASE_NAME = "watcher"
#: The lease lasts this many rounds: a watcher that stops renewing it is replaced after that.
LEASE_ROUNDS = 3
#: At most this many due deliveries are sent per round, by at most DELIVERY_THREADS at once.
MAX_DUE_PER_ROUND = 200
DELIVERY_THREADS = 8
#: A due delivery queued as a job is queued again after this long if still due (seconds).
QUEUE_AGAIN_AFTER = 60.0


def client_of(subscription: dict) -> str:
    flt = subscription["filter"]
    return f"{flt['tenantId']}/{flt['clientId']}"


def matches(subscription: dict, message: dict) -> bool:
    """The message is for this subscription: not older than it, and on its topic if it
    named one."""
    topic = subscription["filter"].get("topic")
    if topic is not None and message.get("topic") != topic:
        return False
    # InstaMsg's times are whole milliseconds: one of the subscription's own millisecond is
    # not older than it (compared with the fraction, it was, and was dropped).
    return message.get("created_at", 0) >= int(subscription["created"] * 1000)


def newer(cursor: dict, message: dict) -> bool:
    at = message.get("created_at", 0)
    return at > cursor["since"] or (
        at == cursor["since"] and str(message["id"]) not in cursor["seen"]
    )


def advanced(cursor: dict, handed: list[dict]) -> dict:
    """The cursor past ``handed`` (new messages, in order)."""
    top = handed[-1]["created_at"]
    seen = [str(m["id"]) for m in handed if m["created_at"] == top]
    if top == cursor["since"]:
        seen = cursor["seen"] + seen
    return {"since": top, "seen": seen}


class Watcher:
    def __init__(
        self, engine, store, settings, clock=time.time, owner=None, resolver=None, enqueue=None
    ):
        self.engine = engine
        self.store = store
        self.settings = settings
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.deliverer = Deliverer(store, settings, clock, resolver)
        #: client -> the time its polls may resume (InstaMsg asked to wait)
        self.paused: dict[str, float] = {}
        #: polls this watcher made (the tests' structural count)
        self.polls = 0
        #: whether this watcher held the lease at its last round
        self.leading: bool | None = None
        #: queues a delivery by its id (the job queue's workers send it); None: sent here
        self.enqueue = enqueue
        #: delivery id -> when this watcher last queued it, and for which due time
        self.queued: dict[str, tuple[float, float]] = {}

    # -- one round ----------------------------------------------------------------------

    def round(self) -> bool:
        """Poll every watched client once and send what is due; False when another
        watcher holds the lease (nothing was done)."""
        leading = self.renew()
        if leading != self.leading:  # said at each change only: who polls, fleet-wide
            self.leading = leading
            said = "holds the lease: it polls" if leading else "waits: another watcher polls"
            logs.event("event watcher " + said, owner=self.owner)
        if not leading:
            return False
        self.poll_all()
        self.deliver_due()
        return True

    def renew(self) -> bool:
        """Take or renew the lease: whether this watcher may poll now."""
        ttl = self.settings.events_poll_seconds * LEASE_ROUNDS
        return self.store.lease(LEASE_NAME, self.owner, ttl)

    def poll_all(self) -> None:
        clients: dict[str, list[dict]] = {}
        for subscription in self.store.subscriptions():
            if not subscription.get("disabled"):
                clients.setdefault(client_of(subscription), []).append(subscription)
        now = self.clock()
        for client, subscriptions in clients.items():
            if self.paused.get(client, 0) > now:
                continue
            if not self.renew():  # a slow round outlived its lease: another watcher polls
                return
            self.paused.pop(client, None)
            self.poll(client, subscriptions)

    def credentials(self, subscriptions: list[dict]) -> dict:
        for subscription in subscriptions:
            if subscription.get("credentials"):
                return subscription["credentials"]
        return held_credentials(self.settings) or {}

    def poll(self, client: str, subscriptions: list[dict]) -> int:
        """Read one client's new messages and keep their deliveries; how many were kept."""
        oldest = min(int(s["created"] * 1000) for s in subscriptions)
        cursor = self.store.cursor(client) or {"since": oldest, "seen": []}
        if cursor["since"] < oldest:  # nobody watching wants anything older
            cursor = {"since": oldest, "seen": []}
        flt = subscriptions[0]["filter"]
        args = {
            "tenantId": flt["tenantId"],
            "clientId": flt["clientId"],
            "start": cursor["since"],
            **self.credentials(subscriptions),
        }
        self.polls += 1
        metrics.EVENT_POLLS.inc()
        try:
            messages = self.engine.run(Invocation(face="events"), "getMessages", args).result
        except ConnectorError as error:
            wait = error.retry_after_s or self.settings.events_poll_seconds
            self.paused[client] = self.clock() + wait
            logs.event(
                "event poll failed", logging.WARNING, client=client, code=error.code, wait_s=wait
            )
            return 0
        fresh = sorted(
            (m for m in messages or [] if newer(cursor, m)),
            key=lambda m: (m.get("created_at", 0), len(str(m["id"])), str(m["id"])),
        )
        kept = 0
        now = self.clock()
        for index, message in enumerate(fresh):
            # A microsecond apart: the delivery log lists them in the order they came.
            at = now + index * 1e-6
            for subscription in subscriptions:
                if matches(subscription, message) and self.store.add_delivery(
                    new_record(subscription, message, at)
                ):
                    kept += 1
        if fresh:
            self.store.set_cursor(client, advanced(cursor, fresh))
        return kept

    def deliver_due(self) -> int:
        """Send what is due: each subscription's deliveries one after another, in the order
        they became due (a 410 stops the rest), several subscriptions at once."""
        now = self.clock()
        due = self.store.due_deliveries(now, MAX_DUE_PER_ROUND)
        if self.enqueue is not None:
            return self.queue_due(due, now)
        queues: dict[str, list[str]] = {}
        for record in due:
            queues.setdefault(record["subscription"], []).append(record["id"])
        if not queues:
            return 0

        def send_in_turn(ids: list[str]) -> None:
            for ident in ids:
                if self.deliverer.run(ident) is None:  # the subscription is gone
                    return

        with ThreadPoolExecutor(min(DELIVERY_THREADS, len(queues))) as pool:
            list(pool.map(send_in_turn, queues.values()))
        return len(due)

    def queue_due(self, due: list[dict], now: float) -> int:
        """Queue each due delivery as a job, once per due time and QUEUE_AGAIN_AFTER: a
        try that failed (or a sender that died) set a new due time, so it is queued as soon
        as that comes; a job the queue lost is queued again after QUEUE_AGAIN_AFTER; a job
        queued twice sends once (the record is taken in one step)."""
        self.queued = {k: v for k, v in self.queued.items() if v[0] + QUEUE_AGAIN_AFTER > now}
        count = 0
        for record in due:
            if self.queued.get(record["id"], (None, None))[1] == record["due"]:
                continue
            self.enqueue(record["id"])
            self.queued[record["id"]] = (now, record["due"])
            count += 1
        return count

    # -- the process ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Rounds every EVENTS_POLL_SECONDS until ``stop`` is set. A state store or a bug
        that fails one round is logged (its kind) and the next round tries again."""
        logs.event("event watcher started", owner=self.owner)
        while not stop.is_set():
            began = time.monotonic()
            try:
                self.round()
            except ConnectorError as error:
                logs.event("event round failed", logging.WARNING, code=error.code)
            except Exception as exc:  # noqa: BLE001  (logged by kind; the watcher goes on)
                logs.event("event round failed", logging.ERROR, fault=type(exc).__name__)
            stop.wait(max(0.0, self.settings.events_poll_seconds - (time.monotonic() - began)))
