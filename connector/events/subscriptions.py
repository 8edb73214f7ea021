"""Subscriptions, the REST Hooks pattern: a flow asks for an event (a row of
connector/events/kinds.py: ``message.received`` of one client, optionally on one topic;
``client.created`` of a tenant; ``file.created`` of a client) at its ``target_url``, and gets an
id and a Standard Webhooks secret (``whsec_``), shown that once. The filter fields each event
requires, and those it refuses, are its row's. The faces (HTTP, CLI) call ``Subscriptions``;
nothing here knows Flask or click.

The watcher reads InstaMsg with the ``clientKey`` and ``clientSecret`` given beside ``event``,
or, when none were given, with the app credentials the connector holds (INSTAMSG_CLIENT_KEY
and INSTAMSG_CLIENT_SECRET). Both the credentials and the signing secret are kept in the
state store and never shown again: ``view`` is what every face shows of a record.
"""

from __future__ import annotations

import base64
import os
import time

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from connector.engine.arguments import held_credentials
from connector.errors import InvalidFields, InvalidRequest, RequiredFields
from connector.events.kinds import EVENTS, FILTER_FIELDS, KINDS
from connector.events.targets import check_target

#: Bounds of a subscription's fields (characters), and of how many subscriptions are kept.
MAX_URL = 2048
MAX_ID = 128
MAX_TOPIC = 65535
MAX_CREDENTIAL = 512
MAX_SUBSCRIPTIONS = 1000
#: Random bytes in a subscription's id and in its signing secret.
ID_BYTES = 12
SECRET_BYTES = 32
#: A missing field's marshmallow message (told apart from a wrong value by its text).
MISSING = "Missing data for required field."


def _text(limit: int, required=True, **kw):
    return fields.String(required=required, validate=validate.Length(min=1, max=limit), **kw)


#: Each filter field's bound.
FILTER_LIMITS = {"tenantId": MAX_ID, "clientId": MAX_ID, "topic": MAX_TOPIC}


def filter_schema(kind) -> type[Schema]:
    """An event's filter: its row's fields, required or optional (``foreign_filters``
    refuses by name one that only other events take: it would select nothing here)."""
    fields_ = {
        name: _text(FILTER_LIMITS[name], required=name in kind.filter) for name in kind.fields
    }
    return Schema.from_dict(fields_, name=f"Filter[{kind.name}]")


class AnyFilter(Schema):
    """The filter of a body whose event is missing or unknown: an object, nothing more."""

    class Meta:
        unknown = EXCLUDE


def subscribe_schema(filter_: type[Schema]) -> type[Schema]:
    """The body of ``POST /subscriptions`` (the names are the contract), for one filter."""

    class SubscribeSchema(Schema):
        class Meta:
            unknown = EXCLUDE

        event = fields.String(required=True, validate=validate.OneOf(EVENTS))
        filter = fields.Nested(filter_, required=True, unknown=EXCLUDE)
        target_url = _text(MAX_URL)
        clientKey = _text(MAX_CREDENTIAL, required=False)  # noqa: N815
        clientSecret = _text(MAX_CREDENTIAL, required=False)  # noqa: N815

    return SubscribeSchema


#: event -> the schema of its bodies; None -> a body whose event is missing or unknown.
SCHEMAS = {name: subscribe_schema(filter_schema(kind)) for name, kind in KINDS.items()}
SCHEMAS[None] = subscribe_schema(AnyFilter)


def foreign_filters(event: str, flt) -> dict:
    """Filter fields given that only other events take: field -> why it is refused."""
    kind = KINDS[event]
    if not isinstance(flt, dict):
        return {}
    said = f"{event} takes no such filter: its filter is {', '.join(kind.fields)}."
    return {f"filter.{n}": [said] for n in FILTER_FIELDS if n in flt and n not in kind.fields}


def load(body: dict) -> dict:
    """The body, checked against its event's row; REQUIRED_FIELDS or INVALID_FIELDS."""
    event = body.get("event")
    known = event if isinstance(event, str) and event in KINDS else None
    try:
        loaded = SCHEMAS[known]().load(body)
    except ValidationError as error:
        raise refusal(error, known) from None
    foreign = foreign_filters(known, body["filter"])
    if foreign:
        said = f"{known} takes no {', '.join(foreign)}: its filter is "
        said += ", ".join(KINDS[known].fields) + "."
        raise InvalidFields("Invalid: " + said, fields=list(foreign), errors=foreign)
    return loaded


def needs(event: str | None) -> str:
    """What a subscription to ``event`` needs, in a sentence."""
    if event is None:
        return f"event must be one of {', '.join(EVENTS)}, each with its own filter."
    names = ["event", *(f"filter.{n}" for n in KINDS[event].filter), "target_url"]
    return f"A {event} subscription needs {', '.join(names[:-1])} and {names[-1]}."


def flatten(messages: dict, prefix="") -> dict:
    """marshmallow's nested messages as ``{"filter.clientId": [...]}``."""
    flat = {}
    for name, value in messages.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:  # "_schema": the object itself was wrong (not an object)
            flat[prefix.rstrip(".") if name == "_schema" else prefix + name] = value
    return flat


def refusal(error: ValidationError, event: str | None):
    """A refused body as REQUIRED_FIELDS (something missing) or INVALID_FIELDS."""
    found = flatten(error.messages if isinstance(error.messages, dict) else {})
    missing = [name for name, said in found.items() if MISSING in said]
    if missing:
        return RequiredFields(
            "Missing: " + ", ".join(missing) + ". " + needs(event),
            fields=missing,
            errors=found,
        )
    return InvalidFields(
        "Invalid: " + ", ".join(found) + ". " + needs(event if "event" not in found else None),
        fields=list(found),
        errors=found,
    )


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and base64 of random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def view(record: dict) -> dict:
    """What every face shows of a subscription: never its secret or credentials."""
    return {
        "id": record["id"],
        "event": record["event"],
        "filter": record["filter"],
        "target_url": record["target_url"],
        "created": record["created"],
        "credentials": "given" if record.get("credentials") else "app",
        "disabled": record.get("disabled"),
        "failing_since": record.get("failing_since"),
    }


class Subscriptions:
    """Subscriptions kept in ``store`` (connector/state/event_store.py)."""

    def __init__(self, store, settings, clock=time.time, resolver=None):
        self.store = store
        self.settings = settings
        self.clock = clock
        #: how target hosts are resolved (tests pin it)
        self.resolver = resolver

    def create(self, body) -> dict:
        """Keep a new subscription; answer its view with ``secret``, shown this once."""
        if not isinstance(body, dict):
            raise InvalidRequest("The body must be a JSON object.")
        loaded = load(body)
        key, secret = loaded.get("clientKey"), loaded.get("clientSecret")
        if bool(key) != bool(secret):
            why = "Give clientKey and clientSecret together, or neither."
            raise InvalidFields(why, fields=["clientKey", "clientSecret"])
        if not key and held_credentials(self.settings) is None:
            raise RequiredFields(
                "Give clientKey and clientSecret: the connector holds no app credentials "
                "(INSTAMSG_CLIENT_KEY and INSTAMSG_CLIENT_SECRET are not set).",
                fields=["clientKey", "clientSecret"],
            )
        check_target(loaded["target_url"], self.settings, self.resolver)
        if len(self.store.subscriptions()) >= MAX_SUBSCRIPTIONS:
            raise InvalidRequest(
                f"The connector keeps at most {MAX_SUBSCRIPTIONS} subscriptions: remove one first.",
                http_status=409,
            )
        now = self.clock()
        record = {
            "id": "sub_" + os.urandom(ID_BYTES).hex(),
            "event": loaded["event"],
            "filter": loaded["filter"],
            "target_url": loaded["target_url"],
            "secret": new_secret(),
            "credentials": {"clientKey": key, "clientSecret": secret} if key else None,
            "created": now,
            "disabled": None,
            "failing_since": None,
        }
        self.store.add_subscription(record)
        return {**view(record), "secret": record["secret"]}

    def list(self) -> list[dict]:
        return [view(record) for record in self.store.subscriptions()]

    def get(self, ident: str) -> dict:
        """The record (secrets included: for the watcher and deliveries), or a 404."""
        record = self.store.subscription(ident) if len(ident) <= MAX_ID else None
        if record is None:
            raise InvalidRequest(
                f"There is no subscription {ident[:MAX_ID]!r}. GET /subscriptions lists them.",
                http_status=404,
            )
        return record

    def show(self, ident: str) -> dict:
        return view(self.get(ident))

    def remove(self, ident: str) -> None:
        self.get(ident)
        self.store.remove_subscription(ident)
