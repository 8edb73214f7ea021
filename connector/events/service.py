"""``Events``: what the faces (the HTTP blueprint, the CLI) hold of the instant triggers, one
per app: the subscriptions, the delivery logs, the redeliver action and the watcher, over one
event store opened on first use."""

from __future__ import annotations

import time

from connector.errors import InvalidRequest
from connector.events import deliveries
from connector.events.subscriptions import Subscriptions
from connector.events.watcher import Watcher
from connector.state.event_store import DELIVERIES_KEPT, open_event_store

#: The name of the delivery task on the queue.
TASK_NAME = "event_delivery"
#: A delivery log's default length (its most is what the store keeps, DELIVERIES_KEPT).
LOG_DEFAULT = 20


class Events:
    def __init__(
        self, settings, engine, store=None, clock=time.time, resolver=None, queue_source=None
    ):
        self.settings = settings
        self.engine = engine
        self.clock = clock
        #: how target hosts are resolved (tests pin it); None: the system's resolver
        self.resolver = resolver
        self._store = store
        #: makes the job queue deliveries run on (the hooks' Huey), which calls ``register``
        #: with it; None: no queue, the watcher sends deliveries itself
        self.queue_source = queue_source
        self._task = None

    @property
    def store(self):
        if self._store is None:
            self._store = open_event_store(self.settings)
        return self._store

    @property
    def subscriptions(self) -> Subscriptions:
        return Subscriptions(self.store, self.settings, self.clock, self.resolver)

    def deliveries(self, ident: str, limit=None) -> list[dict]:
        """A subscription's delivery log, newest first."""
        self.subscriptions.get(ident)
        limit = LOG_DEFAULT if limit is None else limit
        if not 1 <= limit <= DELIVERIES_KEPT:
            raise InvalidRequest(f"limit must be a whole number from 1 to {DELIVERIES_KEPT}.")
        return [deliveries.view(record) for record in self.store.deliveries(ident, limit)]

    def redeliver(self, ident: str, delivery: str) -> dict:
        """Make one of a subscription's deliveries due again at once."""
        self.subscriptions.get(ident)
        record = self.store.delivery(delivery)
        if record is None or record["subscription"] != ident:
            raise InvalidRequest(
                f"Subscription {ident!r} has no delivery {delivery[:64]!r} in its log.",
                http_status=404,
            )
        sender = deliveries.Deliverer(self.store, self.settings, self.clock, self.resolver)
        return deliveries.view(sender.redeliver(delivery))

    # -- deliveries as queued work ---------------------------------------------------------

    def register(self, huey) -> None:
        """Add the delivery task to ``huey`` (the hooks' queue: its consumer runs both)."""
        self._task = huey.task(name=TASK_NAME)(self.run_delivery)

    def run_delivery(self, ident: str) -> None:
        """The queued job: send delivery ``ident`` if it is still due and nobody took it. A
        job that fails (the store is down) leaves the record due: the watcher queues it again."""
        deliveries.Deliverer(self.store, self.settings, self.clock, self.resolver).run(ident)

    def enqueue(self, ident: str) -> None:
        if self._task is None:
            self.queue_source()  # makes the queue, which registers the task
        self._task(ident)

    @property
    def queued(self) -> bool:
        return self.settings.events_queued and self.queue_source is not None

    def watcher(self, owner=None) -> Watcher:
        return Watcher(
            self.engine,
            self.store,
            self.settings,
            self.clock,
            owner=owner,
            resolver=self.resolver,
            enqueue=self.enqueue if self.queued else None,
        )
