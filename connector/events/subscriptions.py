"""Subscriptions, the REST Hooks pattern: a flow asks for ``message.received`` of one client
(optionally on one topic) at its ``target_url``, and gets an id and a Standard Webhooks secret
(``whsec_``), shown that once. The faces (HTTP, CLI) call ``Subscriptions``; nothing here
knows Flask or click.

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
from connector.events.targets import check_target

#: The events a subscription may ask for. InstaMsg's reads tell a new message reliably (its
#: list is ordered and each message has an id and a time); the other lists (files, clients)
#: carry no creation order the watcher could keep a cursor on, so they are not offered.
EVENTS = ("message.received",)
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


class FilterSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    tenantId = _text(MAX_ID)  # noqa: N815  (the contract's names)
    clientId = _text(MAX_ID)  # noqa: N815
    topic = _text(MAX_TOPIC, required=False)


class SubscribeSchema(Schema):
    """The body of ``POST /subscriptions`` (the names are the contract)."""

    class Meta:
        unknown = EXCLUDE

    event = fields.String(required=True, validate=validate.OneOf(EVENTS))
    filter = fields.Nested(FilterSchema, required=True)
    target_url = _text(MAX_URL)
    clientKey = _text(MAX_CREDENTIAL, required=False)  # noqa: N815
    clientSecret = _text(MAX_CREDENTIAL, required=False)  # noqa: N815


def flatten(messages: dict, prefix="") -> dict:
    """marshmallow's nested messages as ``{"filter.clientId": [...]}``."""
    flat = {}
    for name, value in messages.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:  # "_schema": the object itself was wrong (not an object)
            flat[prefix.rstrip(".") if name == "_schema" else prefix + name] = value
    return flat


def refusal(error: ValidationError):
    """A refused body as REQUIRED_FIELDS (something missing) or INVALID_FIELDS."""
    found = flatten(error.messages if isinstance(error.messages, dict) else {})
    missing = [name for name, said in found.items() if MISSING in said]
    if missing:
        return RequiredFields(
            "Missing: " + ", ".join(missing) + ". A subscription needs event, "
            "filter.tenantId, filter.clientId and target_url.",
            fields=missing,
            errors=found,
        )
    return InvalidFields(
        "Invalid: " + ", ".join(found) + f". event must be one of {', '.join(EVENTS)}.",
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
        try:
            loaded = SubscribeSchema().load(body)
        except ValidationError as error:
            raise refusal(error) from None
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
