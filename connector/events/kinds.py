"""The events a subscription may ask for: one table, read by the subscription schema, the
watcher, the CLI, the generated faces and the docs.

InstaMsg pushes nothing, so an event is only offered where one of its reads tells reliably
what is new. Two kinds of cursor do that:

- ``time`` (message.received): getMessages lists a client's messages with an id and a
  creation time and takes ``start``; the cursor is the newest time handed on and the ids
  seen at that millisecond (connector/events/watcher.py).
- ``listing`` (client.created, file.created): getClients lists every client of a tenant and
  getFiles every file of a client, whole, in no creation order and without paging. A listing
  compared with the one before tells what is new without any order: an item whose identity
  (``key``) was not in the previous listing is new. The snapshot kept is the set of those
  identities (as digests) and when the listing was asked for.

What is not offered, and why:

- a client changed: its ``updated_at`` moves on any change, a token or certificate reset as
  much as a new name, and InstaMsg does not say which; a file changed in place cannot be
  told from one uploaded again (both are file.created);
- a message deleted or released: getMessages lists what is kept, and says nothing of what
  went;
- a client or a file deleted: a listing without it would tell it the same way, but no flow
  has asked for it yet; it is the next row this table could take.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: The cursor kinds (see above).
TIME = "time"
LISTING = "listing"

#: Every filter field an event may take: the contract's name -> what it selects (the CLI's
#: help and the docs say it so). Which ones each event takes is its row of KINDS.
FILTER_FIELDS = {
    "tenantId": "The tenant watched.",
    "clientId": "The client watched (of that tenant).",
    "topic": "Only messages on this topic.",
}


def message_key(message: dict) -> str | None:
    ident = message.get("id")
    return None if ident is None or isinstance(ident, (dict, list)) else str(ident)


def client_key(client: dict) -> str | None:
    """A client's id: InstaMsg gives a new client a new id, so an id not listed before is a
    new client (one deleted and made again is new too)."""
    return message_key(client)


def file_key(item: dict) -> str | None:
    """A file's name with its upload time and size: a file uploaded again under the same
    name (InstaMsg replaces it) lists a new ``created_at``, so it is new again."""
    name = item.get("filename")
    if not isinstance(name, str) or not name:
        return None
    return f"{name}@{item.get('created_at')}:{item.get('size')}"


@dataclass(frozen=True)
class EventKind:
    """One event: its name (the delivery's ``type``), the block whose answer tells it, the
    filter fields it requires (in the order that names its scope) and those it may take,
    how its cursor works, how an item is known again, and what a delivery's ``data`` is."""

    name: str
    block: str
    #: what one item is called ("New Client", newClient in n8n, clientCreated in Zapier)
    noun: str
    filter: tuple[str, ...]
    cursor: str
    key: Callable[[dict], str | None]
    summary: str
    data: str
    optional: tuple[str, ...] = ()

    @property
    def camel(self) -> str:
        """The name as one word: ``message.received`` -> ``messageReceived``."""
        head, _, tail = self.name.partition(".")
        return head + tail[:1].upper() + tail[1:]

    @property
    def fields(self) -> tuple[str, ...]:
        return self.filter + self.optional

    def scope(self, flt: dict) -> str:
        """What one poll reads for every subscription alike: ``tenant/client`` or ``tenant``."""
        return "/".join(str(flt[name]) for name in self.filter)

    def place(self, flt: dict) -> str:
        """The name of the scope's cursor and pause: message.received's is the scope itself
        (cursors kept before other events existed carry on), the others' carry the event."""
        scope = self.scope(flt)
        return scope if self.cursor == TIME else f"{self.name}:{scope}"


KINDS = {
    kind.name: kind
    for kind in (
        EventKind(
            name="message.received",
            noun="Message",
            block="getMessages",
            filter=("tenantId", "clientId"),
            optional=("topic",),
            cursor=TIME,
            key=message_key,
            summary="A new message of a client, optionally on one topic.",
            data="the message as getMessages lists it",
        ),
        EventKind(
            name="client.created",
            noun="Client",
            block="getClients",
            filter=("tenantId",),
            cursor=LISTING,
            key=client_key,
            summary="A new client in a tenant.",
            data="the client as getClients lists it",
        ),
        EventKind(
            name="file.created",
            noun="File",
            block="getFiles",
            filter=("tenantId", "clientId"),
            cursor=LISTING,
            key=file_key,
            summary="A new file of a client, or one uploaded again under the same name.",
            data="the file as getFiles lists it",
        ),
    )
}
#: The event names, the first the default of every face.
EVENTS = tuple(KINDS)
DEFAULT_EVENT = EVENTS[0]


def kind_of(subscription: dict) -> EventKind | None:
    """A subscription's event (records kept before events were named all meant the first);
    None for one this version does not know."""
    return KINDS.get(subscription.get("event") or DEFAULT_EVENT)
