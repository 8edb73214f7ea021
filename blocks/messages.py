"""Messages: publishing to a topic, listing what a client exchanged, releasing a message."""

from connector.engine.registry import block
from connector.errors import ApiError
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
    "Lists the messages a client exchanged, optionally in a time window and of one type.",
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
