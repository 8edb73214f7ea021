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

#: A delivery log's default length (its most is what the store keeps, DELIVERIES_KEPT).
LOG_DEFAULT = 20


class Events:
    def __init__(self, settings, engine, store=None, clock=time.time, resolver=None):
        self.settings = settings
        self.engine = engine
        self.clock = clock
        #: how target hosts are resolved (tests pin it); None: the system's resolver
        self.resolver = resolver
        self._store = store

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

    def watcher(self, owner=None) -> Watcher:
        return Watcher(
            self.engine, self.store, self.settings, self.clock, owner=owner, resolver=self.resolver
        )
