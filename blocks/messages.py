"""Messages: publishing to a topic, listing what a client exchanged, releasing a message."""

from datetime import UTC, datetime

from connector import jsonx
from connector.engine.registry import block
from connector.errors import ApiError
from connector.upstream.outcomes import json_result
from schemas import messages as s
from schemas import results as r

MESSAGES = "/api/v1/tenants/{tenant_id}/clients/{client_id}/messages"


def message_id(response, args, ctx):
    """InstaMsg answers a publish with the new message's URL in Location."""
    location = response.headers.get("Location", "").rstrip("/")
    head, _, ident = location.rpartition("/messages/")
    if not head or not ident or "/" in ident:
        raise ApiError(
            "InstaMsg accepted the message but did not say its ID (no usable Location header).",
            upstream={"status": response.status_code, "body": None},
        )
    return {"messageId": ident}


def iso_time(ms) -> str | None:
    """Unix milliseconds as ISO 8601 in UTC (``2026-11-25T10:00:00.000Z``), the form flow
    tools read dates in; None for anything that is not such a time."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float)):
        return None
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload_json(text):
    """A payload whose text is a JSON object or array, parsed (bounded as every answer is,
    jsonx.MAX_DEPTH); None for any other text, which stays in ``payload`` as it is."""
    if not isinstance(text, str) or text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        value = jsonx.loads_bounded(text.encode("utf-8"))
    except ValueError:  # not JSON, too deep, or text that is not Unicode
        return None
    return value if isinstance(value, (dict, list)) else None


def readable(message):
    """One listed message with what a flow needs next, beside InstaMsg's own fields (kept as
    they are): the payload as an object, the time in ISO 8601, and the ID under the name
    releaseMessage takes it by."""
    if not isinstance(message, dict):
        return message
    return {
        **message,
        "messageId": message.get("id"),
        "payload_json": payload_json(message.get("payload")),
        "created_at_iso": iso_time(message.get("created_at")),
    }


def messages(response, args, ctx):
    listed = json_result(response)
    return [readable(m) for m in listed] if isinstance(listed, list) else listed


block(
    "publishMessage",
    "POST",
    MESSAGES,
    s.PublishMessage,
    "Publishes a message on a topic. The topic must be one of the client's pubTopics "
    "(set with createClient or updateClient), or InstaMsg refuses it. Answers the new "
    "message's messageId, InstaMsg's own ID of the message: releaseMessage takes that one, "
    "not the id argument you give here.",
    result=message_id,
    returns=r.Published,
)
block(
    "getMessages",
    "GET",
    MESSAGES,
    s.GetMessages,
    "Lists the messages a client exchanged, optionally in a time window and of one type. "
    "Each comes with its payload parsed (payload_json) when it is a JSON object or array, "
    "its time in ISO 8601 (created_at_iso), and messageId, the ID releaseMessage takes.",
    result=messages,
    returns=[r.Message],
)
block(
    "releaseMessage",
    "PUT",
    MESSAGES + "/{message_id}/release",
    s.ReleaseMessage,
    "Releases a message held by InstaMsg. messageId is the messageId that publishMessage "
    "answered (id in getMessages' list), not the id argument given to publishMessage.",
    returns=r.Released,
)
