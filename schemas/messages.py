"""Arguments of the message blocks."""

from schemas.base import ClientScoped, time_window
from schemas.fields import Boolean, Id, JSONText, Number, Select, String

MESSAGE_TYPE = ["pub", "p2p"]
#: The message types in words, for the forms.
MESSAGE_TYPE_LABELS = {"pub": "Publish on a topic", "p2p": "Send to one client (peer to peer)"}


class PublishMessage(ClientScoped):
    id = Number(
        "Your number for the message: a whole number from 1 to 65535, unique among this "
        "client's messages still in flight. It is not the messageId this block answers, "
        "which is what releaseMessage takes.",
        minimum=1,
        maximum=65535,
        required=True,
        example=1,
    )
    type = Select(
        "pub publishes on a topic; p2p sends to one client.",
        options=MESSAGE_TYPE,
        labels=MESSAGE_TYPE_LABELS,
        required=True,
    )
    topic = String(
        "The topic: case-sensitive UTF-8 text up to 65,535 bytes, one of the client's pubTopics.",
        max_bytes=65535,
        required=True,
        example="pub1",
    )
    payload = JSONText(
        "The message as UTF-8 text; encode binary content as base64 or hex yourself. A JSON "
        "object or array is sent as its JSON text.",
        required=True,
        example='{"temperature": 21.5}',
    )
    qos = Number(
        "Quality of service: 1 at most once, 2 at least once, 3 exactly once.",
        choices=[1, 2, 3],
        labels={1: "At most once", 2: "At least once", 3: "Exactly once"},
        required=True,
        example=1,
    )
    duplicate = Boolean(
        "true only when re-sending a message that was sent before.",
        wire="int",
        load_default=False,
    )
    save = Boolean(
        "true stores the message on the InstaMsg cloud.",
        wire="int",
        load_default=True,
    )


class GetMessages(ClientScoped):
    start, end = time_window()
    type = Select("Only messages of this type.", options=MESSAGE_TYPE, labels=MESSAGE_TYPE_LABELS)


class ReleaseMessage(ClientScoped):
    message_id = Id(
        "The ID of the message to release: the messageId that publishMessage answered (id in "
        "getMessages' list), not the id argument you gave publishMessage.",
        data_key="messageId",
        required=True,
        example="1",
    )
