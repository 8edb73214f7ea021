"""``/subscriptions``: the instant triggers' REST Hooks routes (connector/events). The API key
rule is the blueprint's (connector/web/blueprint.py, before every request); errors leave
through the same handlers as every block's."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from connector.errors import InvalidRequest
from connector.web.envelope import json_response

bp = Blueprint("subscriptions", __name__)


def events():
    return current_app.extensions["events"]


def json_body():
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidRequest(
            "Send the subscription as a JSON object (Content-Type: application/json)."
        )
    return body


@bp.post("/subscriptions")
def subscribe():
    """A new subscription: 201 with its id and its signing secret (shown this once)."""
    return json_response(events().subscriptions.create(json_body()), 201)


@bp.get("/subscriptions")
def list_subscriptions():
    return json_response(events().subscriptions.list())


@bp.get("/subscriptions/<ident>")
def show_subscription(ident):
    return json_response(events().subscriptions.show(ident))


@bp.delete("/subscriptions/<ident>")
def unsubscribe(ident):
    events().subscriptions.remove(ident)
    return Response(status=204)


@bp.get("/subscriptions/<ident>/deliveries")
def delivery_log(ident):
    raw = request.args.get("limit")
    if raw is not None and not (raw.isascii() and raw.isdigit()):
        raise InvalidRequest("limit must be a whole number.")
    return json_response(events().deliveries(ident, None if raw is None else int(raw)))


@bp.post("/subscriptions/<ident>/deliveries/<delivery>/redeliver")
def redeliver(ident, delivery):
    return json_response(events().redeliver(ident, delivery), 202)
