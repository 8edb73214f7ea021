"""The HTTP face of hooks: made, listed, shown, tested and removed under /hooks (an API key
needed, like every block call), and a sender's deliveries at /webhooks/<id>[/<token>] (open:
the signature, or the URL's token, is the proof). connector/hooks does the work; this turns
requests into its calls and its answers into responses."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from connector import jsonx
from connector.errors import InvalidRequest
from connector.hooks.service import SENDER_PREFIX, Hooks
from connector.web.context import current_invocation
from connector.web.envelope import answer_response, json_response

bp = Blueprint("hooks", __name__)


def hooks() -> Hooks:
    return current_app.extensions["instamsg_hooks"]


def json_body():
    """The request's body as JSON (any value: the hooks module says what it takes)."""
    raw = request.get_data()
    try:
        return jsonx.loads(raw) if raw.strip() else {}
    except ValueError:
        raise InvalidRequest("The request body is not valid JSON.") from None


@bp.post("/hooks")
def create_hook():
    """Make a hook; the 201 holds its secret (and a token scheme's URL), this once."""
    return json_response(hooks().create(json_body()), 201)


@bp.get("/hooks")
def list_hooks():
    return json_response(hooks().all())


@bp.get("/hooks/<hook_id>")
def show_hook(hook_id):
    service = hooks()
    return json_response(service.view(service.get(hook_id)))


@bp.delete("/hooks/<hook_id>")
def remove_hook(hook_id):
    hooks().remove(hook_id)
    return json_response({"id": hook_id, "removed": True})


@bp.post("/hooks/<hook_id>/test")
def test_hook(hook_id):
    """Map a sample delivery and show the arguments; nothing is sent to InstaMsg."""
    return json_response(hooks().test(hook_id, json_body()))


@bp.get("/hooks/<hook_id>/deliveries")
def hook_deliveries(hook_id):
    """What happened to the hook's deliveries, newest first."""
    limit = request.args.get("limit", "")
    count = int(limit) if limit.isascii() and limit.isdigit() else 50
    return json_response(hooks().deliveries(hook_id, count))


@bp.post("/hooks/<hook_id>/deliveries/<record_id>/redeliver")
def redeliver(hook_id, record_id):
    """Run a recorded delivery again (under the caller's Idempotency-Key, when given)."""
    answer = hooks().redeliver(
        current_invocation(), hook_id, record_id, request.headers.get("Idempotency-Key")
    )
    return answer_response(answer)


@bp.post(SENDER_PREFIX + "<hook_id>")
@bp.post(SENDER_PREFIX + "<hook_id>/<token>")
def deliver(hook_id, token=None):
    """A sender's delivery: verified on its raw body, mapped, run once under its id."""
    answer = hooks().receive(
        current_invocation(),
        hook_id,
        token,
        request.get_data(),
        request.headers,
        {k: v[0] if len(v) == 1 else v for k, v in request.args.lists()},
        request.mimetype,
    )
    return answer_response(answer)
