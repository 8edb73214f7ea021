"""What each block answers under ``contextWrites.to``: one small schema per shape.

The shapes are those the InstaMsg sandbox answers (sandbox/), which follows the InstaMsg
docs; InstaMsg itself may add fields, so every result allows more than it lists. Times
are unix milliseconds. A block names its result in its declaration (``returns=``): a
schema class for an object, ``[SchemaClass]`` for a list of them.
"""

from __future__ import annotations

from marshmallow import Schema, fields

MS = "Unix time in milliseconds."


def _text(info, **kwargs):
    return fields.String(metadata={"description": info}, **kwargs)


def _int(info, **kwargs):
    return fields.Integer(metadata={"description": info}, **kwargs)


def _flag(info, **kwargs):
    return fields.Boolean(metadata={"description": info}, **kwargs)


class Result(Schema):
    """Base of every result: more fields than listed may come."""


class AccessToken(Result):
    access_token = _text("The token: give it as accessToken to the other blocks.", required=True)
    token_type = _text("Always bearer.")
    expires_in = _int("Seconds until the token expires.")


class Done(Result):
    message = _text("What was done, in words.")


class Deleted(Done):
    id = _text("The ID of what was deleted.")


class Tenant(Result):
    id = _text("The tenant's ID: tenantId of the client blocks.")
    name = _text("The tenant's name.")
    description = _text("Its description.", allow_none=True)
    max_clients = _int("How many clients it may create.")
    max_messages = _int("How many messages its clients may send together.")
    active = _flag("Whether the tenant is active.")
    clients = _int("How many clients it has.")
    messages = _int("How many messages its clients have sent.")
    created_at = _int(MS)
    updated_at = _int(MS)


class ProvisioningParams(Result):
    provisioning_id = _text("The device's unique ID.")
    gsm_msisdn = _text("The SIM's mobile number.")
    gsm_apn = _text("The APN.")
    gsm_username = _text("The APN user name.")
    gsm_send_sms = _text("1 when the provisioning SMS was sent.")
    gsm_isd_code = _text("The country calling code.")


class Client(Result):
    id = _text("The client's ID: clientId of the other client blocks.")
    tenant_id = _text("The tenant it belongs to.")
    type = _text("device or user.")
    name = _text("The client's name.")
    description = _text("Its description.", allow_none=True)
    sub_topics = fields.List(fields.String(), metadata={"description": "Its subscribe topics."})
    pub_topics = fields.List(fields.String(), metadata={"description": "Its publish topics."})
    secure_cert_enabled = _flag("Whether it authenticates with a certificate.")
    provisioning_params = fields.Nested(
        ProvisioningParams, metadata={"description": "Provisioning parameters (no secrets)."}
    )
    state = _text("online or offline.")
    created_at = _int(MS)
    updated_at = _int(MS)


class ClientAuthToken(Result):
    client_id = _text("The client's ID.")
    auth_token = _text("The client's auth token (clients of type user).")


class ClientCertificate(Result):
    client_id = _text("The client's ID.")
    certificate = _text("The new certificate, PEM.")
    fingerprint = _text("Its SHA-256 fingerprint, hex.")


class ClientInfo(Result):
    id = _text("The client's ID.")
    type = _text("device or user.")
    state = _text("online or offline.")
    last_seen = _int("When it was last connected; " + MS, allow_none=True)
    messages_published = _int("Messages it published.")
    sessions = _int("Sessions it had.")
    files = _int("Files it stores.")
    secure_cert_enabled = _flag("Whether it authenticates with a certificate.")
    certificate_fingerprint = _text("Its certificate's SHA-256 fingerprint.", allow_none=True)
    provisioning_id = _text("The device's unique ID.", allow_none=True)


class NetworkLog(Result):
    ts = _int(MS)
    mac_id = _text("The network interface's MAC address.", allow_none=True)
    imei = _text("The interface's IMEI.", allow_none=True)
    msisdn = _text("The SIM's mobile number.", allow_none=True)
    iccid = _text("The SIM's ICCID.", allow_none=True)
    network = _text("The kind of network: gsm, wifi or lan.", allow_none=True)


class Session(Result):
    id = _text("The session's ID.")
    start = _int("When it connected; " + MS)
    end = _int("When it was last seen in the session; " + MS, allow_none=True)
    messages = _int("Messages it published in the session.")


class Metrics(Result):
    interval = _text("day or month.")
    from_ = _int("The beginning of the interval; " + MS, data_key="from")
    to = _int("The end of the interval; " + MS)
    messages_published = _int("Messages published in the interval.")
    messages_stored = _int("Messages stored in the interval.")
    payload_bytes = _int("Payload bytes in the interval.")
    sessions = _int("Sessions in the interval.")
    logs = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "Log lines by level."},
    )


class LogLine(Result):
    ts = _int(MS)
    level = _text("DEBUG, INFO, WARN, ERROR or FATAL.")
    creator = _text("InstaMsg or client.")
    message = _text("The log line.")


class FileInfo(Result):
    filename = _text("The file's name.")
    size = _int("Its size in bytes.")
    contentType = _text("Its content type.")  # noqa: N815 (the result's own spelling)
    created_at = _int(MS)


class DownloadedFile(Result):
    filename = _text("The file's name.", required=True)
    contentType = _text("Its content type.")  # noqa: N815
    size = _int("Its size in bytes.")
    content = _text("The bytes, base64-encoded.")


class DeletedFile(Done):
    filename = _text("The deleted file's name.")


class Config(Result):
    config = fields.Dict(metadata={"description": "The configuration's keys and values."})
    updated_at = _int(
        "When it was last changed; " + MS + " None when there is none.", allow_none=True
    )


class Published(Result):
    messageId = _text(  # noqa: N815 (the result's own spelling)
        "The message's ID at InstaMsg: give it to releaseMessage as messageId. It is not "
        "the id argument you gave.",
        required=True,
    )


class Message(Result):
    id = _text("The message's ID at InstaMsg: releaseMessage's messageId.")
    messageId = _text(  # noqa: N815 (named as releaseMessage's argument and publish's answer)
        "The same ID as id, under the name releaseMessage takes it by and publishMessage "
        "answers it with: pass this one on."
    )
    message_id = _int(
        "The id argument it was published with (1 to 65535): not what releaseMessage takes."
    )
    type = _text("pub or p2p.")
    topic = _text("Its topic.")
    payload = _text("Its payload, the text as it was published.")
    payload_json = fields.Raw(
        allow_none=True,
        metadata={
            "description": "The payload parsed, when its text is a JSON object or array; "
            "null for any other payload (payload keeps the text).",
            "anyOf": [{"type": "object"}, {"type": "array", "items": {}}],
        },
    )
    qos = _int("Its quality of service: 1, 2 or 3.")
    duplicate = _int("1 when it was a re-send.")
    status = _text("held, or released.")
    created_at = _int(MS)
    created_at_iso = _text("created_at in ISO 8601, UTC (2026-11-25T10:00:00.000Z).")


class Released(Result):
    id = _text("The released message's ID.")
    status = _text("released.")
