"""One delivery: a new message (or client, or file), POSTed to a subscription's ``target_url`` as
JSON, signed per Standard Webhooks with the ``standardwebhooks`` library.

A delivery is a durable record in the state store (``new_record``), kept before it is first
sent; ``Deliverer.run`` sends a record that is due and writes its outcome back, so a process
that dies mid-send leaves a record that is still due and is sent again (with the same
``webhook-id``: a receiver de-duplicates on it). The body::

    {"type": "<the event: message.received, ...>", "timestamp": "<ISO 8601, UTC>",
     "subscription": "<id>", "data": <the item as its event's block lists it>}

Outcomes:

- a 2xx: delivered;
- a 410 Gone: the subscriber is gone, and so is the subscription (as Zapier expects);
- anything else (another status, a redirect: never followed, no connection, over the time
  limit): tried again after the next wait of EVENTS_RETRY_SCHEDULE; when the schedule is
  spent the delivery has failed. A subscription whose deliveries have failed without a success
  for EVENTS_DISABLE_AFTER is disabled, and its record says so and since when.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from datetime import UTC, datetime

import requests
from standardwebhooks import Webhook

from connector import jsonx, logs, metrics
from connector.errors import ConnectorError
from connector.events.kinds import kind_of
from connector.events.targets import check_target
from connector.upstream.bounds import Watchdog
from connector.upstream.client import USER_AGENT
from connector.upstream.fetch import PinnedAdapter
from connector.upstream.transport import RejectAll

#: what a taken delivery's send lease adds to its time limits (seconds)
SEND_SLACK = 30.0
#: how much of a target's answer (or failure) a delivery's record keeps (characters)
MAX_NOTE = 200
#: how often a sent delivery's outcome is written again while the state store does not
#: answer (seconds; for as long as its send lease runs)
OUTCOME_RETRY_S = 1.0


def delivery_id(subscription: str, message_id: str) -> str:
    """The ``webhook-id``: the same for an item (a message's id, a client's, a file's key)
    and a subscription, whoever sends it, however often."""
    digest = hashlib.sha256(f"{subscription}\n{message_id}".encode()).hexdigest()
    return "msg_" + digest[:32]


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def new_record(subscription: dict, item: dict, now: float) -> dict:
    """The record of a delivery of ``item`` (of the subscription's event) not yet sent, due
    at once. ``message`` is the item's key, whatever the event (the log's name for it)."""
    kind = kind_of(subscription)
    key = kind.key(item)
    return {
        "id": delivery_id(subscription["id"], key),
        "subscription": subscription["id"],
        "message": key,
        "created": now,
        "due": now,
        "state": "pending",
        "attempts": 0,
        "last": None,
        "body": {
            "type": kind.name,
            "timestamp": iso(now),
            "subscription": subscription["id"],
            "data": item,
        },
    }


def view(record: dict) -> dict:
    """A delivery as the log shows it."""
    shown = {k: record[k] for k in ("id", "message", "created", "due", "state", "attempts")}
    shown["last"] = record.get("last")
    return shown


def signed(record: dict, secret: str, now: float) -> tuple[bytes, dict]:
    """The body's bytes and the headers that sign them."""
    payload = jsonx.dumps(record["body"])
    if isinstance(payload, str):
        payload = payload.encode()
    stamp = datetime.fromtimestamp(int(now), UTC)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": record["id"],
        "webhook-timestamp": str(int(now)),
        "webhook-signature": Webhook(secret).sign(record["id"], stamp, payload),
    }
    return payload, headers


class TooSlow(Exception):
    """The target had not answered within EVENTS_DELIVERY_TIMEOUT, however it dripped."""


def post(url: str, payload: bytes, headers: dict, settings, resolver=None) -> int:
    """POST once to a checked target, connecting to the checked address; the answer's
    status. The whole exchange ends by EVENTS_DELIVERY_TIMEOUT (the watchdog every upstream
    exchange has: a target dripping its answer a byte at a time is cut off too). Raises
    ConnectorError (a refused target), TooSlow, or requests' errors."""
    parts, _host, _port, address = check_target(url, settings, resolver)
    limit = settings.events_delivery_timeout
    with Watchdog(time.monotonic() + limit) as watchdog:
        try:
            status = _post(url, parts, address, payload, headers, limit)
        except requests.RequestException:
            if watchdog.why is not None:  # the watchdog cut it off: say so
                raise TooSlow from None
            raise
        if watchdog.why is not None:
            raise TooSlow
        return status


def _post(url, parts, address, payload, headers, timeout) -> int:
    with requests.Session() as session:
        session.trust_env = False  # a proxy would connect elsewhere than the checked address
        session.cookies.set_policy(RejectAll())
        session.mount(f"{parts.scheme}://", PinnedAdapter(address))
        with session.post(
            url,
            data=payload,
            headers={**headers, "Host": parts.netloc.rpartition("@")[2]},
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,  # the answer's body is never read: its status is all that counts
        ) as response:
            return response.status_code


class Deliverer:
    """Sends due deliveries and keeps their outcomes (``store``: the event store)."""

    def __init__(self, store, settings, clock=time.time, resolver=None):
        self.store = store
        self.settings = settings
        self.clock = clock
        self.resolver = resolver

    def run(self, ident: str) -> dict | None:
        """Send the delivery ``ident`` if it is still due; its record afterwards (None when
        it, or its subscription, no longer exists)."""
        now, taken = self.clock(), time.monotonic()
        # Taken in one step: of two senders (queue workers, a watcher) only one sends it.
        if not self.store.take_delivery(ident, now, now + self.send_lease()):
            return self.store.delivery(ident)
        record = self.store.delivery(ident)
        if record is None:
            return None
        subscription = self.store.subscription(record["subscription"])
        if subscription is None:
            return None
        if subscription.get("disabled"):
            return self._final(record, "skipped", "the subscription is disabled")
        payload, headers = signed(record, subscription["secret"], now)
        try:
            status = post(
                subscription["target_url"], payload, headers, self.settings, self.resolver
            )
            note = f"HTTP {status}"
        except ConnectorError as error:
            status, note = None, error.message[:MAX_NOTE]
        except TooSlow:
            status, note = None, "no whole answer within EVENTS_DELIVERY_TIMEOUT"
        except requests.RequestException as exc:
            status, note = None, f"no answer ({type(exc).__name__})"
        record["attempts"] += 1
        record["last"] = {"at": now, "status": status, "note": note}
        logs.event(
            "event delivery",
            subscription=subscription["id"],
            delivery=record["id"],
            status=status,
            attempt=record["attempts"],
        )
        # Each try of the write starts from the records as they were: a try that failed half
        # way (the subscription's failing_since cleared in the dict, not in the store) must
        # not make the next one skip that write.
        return self._written(
            lambda: self._outcome(copy.deepcopy(record), copy.deepcopy(subscription), status, now),
            taken,
        )

    def _written(self, write, taken: float):
        """Write a sent delivery's outcome. The target has answered (with a 2xx it has the
        message): an outcome lost to a state store that is not answering would leave the
        record due at the end of its send lease, and the message sent twice. So it is tried
        again each OUTCOME_RETRY_S while the send lease runs; after that the record is
        another sender's to take anyway."""
        while True:
            try:
                return write()
            except ConnectorError as error:
                if time.monotonic() + OUTCOME_RETRY_S >= taken + self.send_lease():
                    raise
                logs.event(
                    "event delivery outcome not written yet", logging.WARNING, code=error.code
                )
                time.sleep(OUTCOME_RETRY_S)

    def _outcome(self, record: dict, subscription: dict, status, now: float) -> dict | None:
        if status is not None and 200 <= status < 300:
            if subscription.get("failing_since") is not None:
                subscription["failing_since"] = None
                self.store.save_subscription(subscription)
            return self._final(record, "delivered")
        if status == 410:
            self.store.remove_subscription(subscription["id"])
            metrics.EVENT_DELIVERIES.labels("gone").inc()  # counted once it is written
            logs.event(
                "subscription removed: its target answered 410", subscription=subscription["id"]
            )
            return None
        return self._failed(record, subscription, now)

    def send_lease(self) -> float:
        """How long a taken delivery is left to its sender: its connection and answer time
        limits, and SEND_SLACK. A sender that dies leaves it due again after that."""
        return 2 * self.settings.events_delivery_timeout + SEND_SLACK

    def _final(self, record: dict, state: str, note: str | None = None) -> dict:
        record["state"], record["due"] = state, None
        if note:
            record["last"] = {**(record.get("last") or {}), "note": note}
        self.store.save_delivery(record)
        metrics.EVENT_DELIVERIES.labels(state).inc()  # once written: a retried write counts once
        return record

    def _failed(self, record: dict, subscription: dict, now: float) -> dict:
        since = subscription.get("failing_since")
        if since is None:
            subscription["failing_since"] = since = now
            self.store.save_subscription(subscription)
        if now - since >= self.settings.events_disable_after:
            subscription["disabled"] = {
                "at": now,
                "reason": "its deliveries failed for EVENTS_DISABLE_AFTER without a success",
            }
            self.store.save_subscription(subscription)
            logs.event("subscription disabled", logging.WARNING, subscription=subscription["id"])
            return self._final(record, "failed")
        schedule = self.settings.events_retry_schedule
        if record["attempts"] > len(schedule):
            return self._final(record, "failed")
        record["state"], record["due"] = "retrying", now + schedule[record["attempts"] - 1]
        self.store.save_delivery(record)
        metrics.EVENT_DELIVERIES.labels("retrying").inc()
        return record

    def redeliver(self, ident: str) -> dict | None:
        """Make a delivery due again at once (its schedule starts anew)."""
        record = self.store.delivery(ident)
        if record is None:
            return None
        record["state"], record["due"], record["attempts"] = "pending", self.clock(), 0
        self.store.save_delivery(record)
        return record
