"""The watcher: one poll per watched scope for all its subscriptions, and the deliveries.

Each round (every EVENTS_POLL_SECONDS) the watcher that holds the fleet-wide lease reads each
watched scope once with its event's block (connector/events/kinds.py: getMessages of a client,
getClients of a tenant, getFiles of a client), through the engine (its validation, managed
tokens, retries and outcome table), from the scope's durable cursor on. For each new item and
each matching subscription it keeps one delivery record (its id is the ``webhook-id``, so a
second keep of the same one changes nothing), and only then moves the cursor past the item.
A watcher killed at any point therefore loses nothing and records nothing twice: the next
round reads from the cursor last written again. Then it sends the deliveries that are due.

- One watcher fleet-wide: the lease ``watcher`` in the state store (Redis when instances share
  one), renewed each round; another watcher waits until it runs out (LEASE_ROUNDS rounds).
- A client's cursor is the time of the newest message handed on and the ids seen at that very
  millisecond, read again from there (``start`` is inclusive); a message older than a
  subscription is never delivered to it.
- A listing's cursor (client.created, file.created) is its snapshot: the keys of the items
  listed so far (as digests) and when it was last asked for. An item whose key the snapshot
  lacks is new; one listing that came back short or empty makes nothing new at the next. A
  subscription is sent a new item when the last snapshot was asked for after the
  subscription was made (so the item came after it), or else when the item's own
  ``created_at`` is not older than the subscription; the first listing of a scope is thus its
  baseline. A listing of more than MAX_SNAPSHOT_KEYS items is not compared (nothing is sent
  for that scope, and its snapshot stays) until it is shorter again, and said in the log.
- An answer that is not a list, and items without a key, are left (logged): nothing crashes
  and the cursor stays.
- A client whose messages since the cursor make an answer longer than the connector reads
  (ANSWER_LIMIT, say after the watcher was stopped for a while) is read in a time window
  from then on: half as wide after each answer too long, twice as wide after each that was
  read, back to open reads at WIDEST_WINDOW_MS. An empty window older than SETTLED_MS is
  passed over. Without it the same too-long read was asked for again every round, for ever,
  and that client's subscriptions got nothing more.
- InstaMsg's 429 (or any answer with Retry-After) pauses that scope's polls for as long
  as it asks; other scopes carry on.
- Subscriptions with their own clientKey and clientSecret are read with them (the oldest
  such subscription's, for a client several watch); else with INSTAMSG_CLIENT_KEY/SECRET.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from connector import logs, metrics
from connector.engine import Invocation
from connector.engine.arguments import held_credentials
from connector.errors import AnswerTooLarge, ConnectorError
from connector.events.deliveries import Deliverer, new_record
from connector.events.kinds import TIME, EventKind, kind_of
from connector.state.event_store import MAX_SNAPSHOT_KEYS

LEASE_NAME = "watcher"
#: The lease lasts this many rounds: a watcher that stops renewing it is replaced after that.
LEASE_ROUNDS = 3
#: Due deliveries are sent this many at a time, by at most DELIVERY_THREADS at once, batch
#: after batch while a round lasts (EVENTS_POLL_SECONDS); the rest wait for the next round.
#: (One batch a round capped a fleet at 40 deliveries a second at 5 s rounds: bench S8.)
MAX_DUE_PER_ROUND = 200
#: Due deliveries queued as jobs per round at most: queueing one is a small write, and the
#: queue's consumers send them.
MAX_QUEUED_PER_ROUND = 5000
DELIVERY_THREADS = 8
#: A due delivery queued as a job is queued again after this long if still due (seconds).
QUEUE_AGAIN_AFTER = 60.0
#: Hex digits of an item key's digest in a snapshot: 64 bits, so that two of a listing's
#: MAX_SNAPSHOT_KEYS items share one by chance about 3 times in 10**12 (one of them would
#: then not be told new); a snapshot stays a few hundred kilobytes at most.
DIGEST_CHARS = 16
#: The widest time window a narrowed read of a client's messages asks for (ms): wider, the
#: reads are open again (from the cursor on). The narrowest is 1 ms.
WIDEST_WINDOW_MS = 3_600_000
#: A window that ended this long ago (ms, on the connector's clock) and held nothing new is
#: passed over: InstaMsg has stored what it will store for it (a margin for the two clocks).
SETTLED_MS = 60_000


def place_of(subscription: dict) -> str:
    """The name of a subscription's scope cursor: one poll per place for all its subscriptions."""
    return kind_of(subscription).place(subscription["filter"])


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:DIGEST_CHARS]


def at_of(item: dict) -> int:
    at = item.get("created_at")
    return at if isinstance(at, int) else 0


def listed_after(subscription: dict, item: dict, since: float | None) -> bool:
    """A new item of a listing is for this subscription: the listing before was asked for
    after the subscription was made, or the item's own time is not older than it."""
    if since is not None and since >= subscription["created"]:
        return True
    at = item.get("created_at")
    return isinstance(at, int) and at >= int(subscription["created"] * 1000)


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
    top = handed[-1].get("created_at", 0)
    seen = [str(m["id"]) for m in handed if m.get("created_at", 0) == top]
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
        #: client -> the width of the time window its messages are read in (ms), while its
        #: answers from the cursor on are too long to read whole
        self.windows: dict[str, int] = {}

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
        places: dict[str, list[dict]] = {}
        for subscription in self.store.subscriptions():
            # an event this version does not know (a newer one's record) waits for it
            if not subscription.get("disabled") and kind_of(subscription) is not None:
                places.setdefault(place_of(subscription), []).append(subscription)
        now = self.clock()
        for place, subscriptions in places.items():
            if self.paused.get(place, 0) > now:
                continue
            if not self.renew():  # a slow round outlived its lease: another watcher polls
                return
            self.paused.pop(place, None)
            self.poll(place, subscriptions)

    def credentials(self, subscriptions: list[dict]) -> dict:
        for subscription in subscriptions:
            if subscription.get("credentials"):
                return subscription["credentials"]
        return held_credentials(self.settings) or {}

    def poll(self, place: str, subscriptions: list[dict]) -> int:
        """Read one scope (a client's messages or files, a tenant's clients) for all its
        subscriptions and keep the new items' deliveries; how many were kept."""
        kind = kind_of(subscriptions[0])
        flt = subscriptions[0]["filter"]
        args = {name: flt[name] for name in kind.filter}
        cursor = None
        if kind.cursor == TIME:
            oldest = min(int(s["created"] * 1000) for s in subscriptions)
            cursor = self.store.cursor(place) or {"since": oldest, "seen": []}
            if cursor["since"] < oldest:  # nobody watching wants anything older
                cursor = {"since": oldest, "seen": []}
            args["start"] = cursor["since"]
            if place in self.windows:
                args["end"] = cursor["since"] + self.windows[place] - 1
        asked = self.clock()
        self.polls += 1
        metrics.EVENT_POLLS.inc()
        try:
            listing = self.engine.run(
                Invocation(face="events"), kind.block, {**args, **self.credentials(subscriptions)}
            ).result
        except ConnectorError as error:
            if isinstance(error, AnswerTooLarge) and kind.cursor == TIME:
                return self.narrow(place)
            wait = error.retry_after_s or self.settings.events_poll_seconds
            self.paused[place] = self.clock() + wait
            logs.event(
                "event poll failed", logging.WARNING, client=place, code=error.code, wait_s=wait
            )
            return 0
        items = self.items(kind, place, listing)
        if items is None:
            return 0
        if kind.cursor == TIME:
            kept = self.keep_messages(place, cursor, subscriptions, items, args.get("end"))
            self.widen(place)
            return kept
        return self.keep_listed(place, asked, subscriptions, kind, items)

    def items(self, kind: EventKind, place: str, listing) -> list[dict] | None:
        """The listing's items that have a key; None (logged) when it is not a list."""
        if not isinstance(listing, list):
            logs.event("event poll answered no list", logging.WARNING, client=place)
            return None
        items = [i for i in listing if isinstance(i, dict) and kind.key(i) is not None]
        if len(items) < len(listing):
            left = len(listing) - len(items)
            logs.event("event poll left items without a key", logging.WARNING, client=place,
                       left=left)  # fmt: skip
        return items

    def keep_listed(
        self, place: str, asked: float, subscriptions: list[dict], kind: EventKind, items
    ) -> int:
        """Compare a listing with the last snapshot, keep the new items' deliveries, then the
        listing as the snapshot."""
        keyed = {digest(kind.key(item)): item for item in items}
        if len(keyed) > MAX_SNAPSHOT_KEYS:
            logs.event("event listing too long to compare", logging.WARNING, client=place,
                       items=len(keyed), most=MAX_SNAPSHOT_KEYS)  # fmt: skip
            return 0
        last = self.store.snapshot(place)
        before = set(last["keys"]) if last else set()
        since = last["at"] if last else None
        fresh = sorted(
            (item for key, item in keyed.items() if key not in before),
            key=lambda item: (at_of(item), kind.key(item)),
        )
        kept = 0
        now = self.clock()
        for index, item in enumerate(fresh):
            at = now + index * 1e-6  # the delivery log lists them in the order they came
            for subscription in subscriptions:
                if listed_after(subscription, item, since) and self.store.add_delivery(
                    new_record(subscription, item, at)
                ):
                    kept += 1
        # Written each poll, unchanged or not: its time is what tells a later subscription
        # whether the next new item came after it. The keys once listed are kept too: a
        # listing that once came back short or empty (an upstream glitch, a maintenance
        # answer) then does not make every item new at the next whole one. A key gone from
        # the listing never needs to be new again (a client made again has a new id, a file
        # uploaded again a new time), so those are the ones left out past the cap.
        known = before | set(keyed)
        if len(known) > MAX_SNAPSHOT_KEYS:
            known = set(keyed)
        self.store.set_snapshot(place, {"at": asked, "keys": sorted(known)})
        return kept

    def keep_messages(
        self, client: str, cursor: dict, subscriptions: list[dict], messages, end=None
    ) -> int:
        """Keep the deliveries of the messages past ``cursor``, then move it past them (or,
        when they were read up to ``end`` and there were none, past a settled window)."""
        fresh = sorted(
            (m for m in messages if newer(cursor, m)),
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
        elif end is not None and end < self.clock() * 1000 - SETTLED_MS:
            self.store.set_cursor(client, {"since": end + 1, "seen": []})
        return kept

    def narrow(self, client: str) -> int:
        """The client's answer from its cursor on was too long to read: ask for half the
        window next round (no pause: a narrower read is another read)."""
        width = max(1, self.windows.get(client, WIDEST_WINDOW_MS * 2) // 2)
        self.windows[client] = width
        logs.event("event poll answer too long: reading a narrower window", logging.WARNING,
                   client=client, window_ms=width)  # fmt: skip
        return 0

    def widen(self, client: str) -> None:
        """A windowed read went through: twice the window next time, open reads again past
        WIDEST_WINDOW_MS."""
        if client in self.windows:
            width = self.windows[client] * 2
            if width > WIDEST_WINDOW_MS:
                del self.windows[client]
            else:
                self.windows[client] = width

    def deliver_due(self) -> int:
        """Send what is due: each subscription's deliveries one after another, in the order
        they became due (a 410 stops the rest), several subscriptions at once."""
        now = self.clock()
        if self.enqueue is not None:
            return self.queue_due(self.store.due_deliveries(now, MAX_QUEUED_PER_ROUND), now)
        ends = time.monotonic() + self.settings.events_poll_seconds
        sent = 0
        while True:
            due = self.store.due_deliveries(now, MAX_DUE_PER_ROUND)
            self.send_batch(due)
            sent += len(due)
            # A batch sent leaves the due set (delivered, or due again later, or taken).
            if len(due) < MAX_DUE_PER_ROUND or time.monotonic() > ends:
                return sent
            now = self.clock()

    def send_batch(self, due: list[dict]) -> None:
        queues: dict[str, list[str]] = {}
        for record in due:
            queues.setdefault(record["subscription"], []).append(record["id"])
        if not queues:
            return

        def send_in_turn(ids: list[str]) -> None:
            for ident in ids:
                if self.deliverer.run(ident) is None:  # the subscription is gone
                    return

        with ThreadPoolExecutor(min(DELIVERY_THREADS, len(queues))) as pool:
            list(pool.map(send_in_turn, queues.values()))

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
        # Stopped (SIGTERM: a deploy, make run's restart): the next watcher polls at once, not
        # after the lease has run out (LEASE_ROUNDS rounds).
        try:
            self.store.release(LEASE_NAME, self.owner)
        except ConnectorError as error:  # it runs out on its own
            logs.event("event lease not given up", logging.WARNING, code=error.code)
        logs.event("event watcher stopped", owner=self.owner)
