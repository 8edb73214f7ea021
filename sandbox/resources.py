"""Looking up tenants and clients, writing logs, and how each resource is shown."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

from flask import Blueprint, g, request

from sandbox.http import HIDDEN, SESSION_GAP_MS, SandboxError, db, not_found, settings
from sandbox.store import loads, now_ms

bp = Blueprint("sandbox_resources", __name__)


def basic_app() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            key, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            key, secret = "", None
        known = settings().apps.get(key)
        # As bytes: compare_digest refuses str with non-ASCII characters (found by fuzzing).
        if (
            known is not None
            and secret is not None
            and secrets.compare_digest(known.encode(), secret.encode())
        ):
            return key
    raise SandboxError(
        401,
        "invalid_client",
        "Unknown client key or wrong client secret.",
        {"WWW-Authenticate": 'Basic realm="InstaMsg"'},
    )


def bearer_app() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    row = None
    if scheme.lower() == "bearer" and token:
        row = db().one("SELECT app, expires_at, revoked FROM tokens WHERE token = ?", token)
    if row is None or row["revoked"] or row["expires_at"] <= now_ms():
        raise SandboxError(
            401,
            "invalid_token",
            "The access token is missing, unknown, revoked or expired.",
            {"WWW-Authenticate": 'Bearer realm="InstaMsg", error="invalid_token"'},
        )
    return row["app"]


def tenant_row(tenant_id):
    row = db().one("SELECT * FROM tenants WHERE id = ? AND app = ?", tenant_id, g.app)
    if row is None:
        raise not_found(f"Tenant {tenant_id!r}")
    return row


def client_row(tenant_id, client_id):
    tenant_row(tenant_id)
    row = db().one("SELECT * FROM clients WHERE id = ? AND tenant_id = ?", client_id, tenant_id)
    if row is None:
        raise not_found(f"Client {client_id!r} of tenant {tenant_id!r}")
    return row


def log(conn, tenant_id, client_id, level, creator, message, ts=None):
    conn.execute(
        "INSERT INTO logs (tenant_id, client_id, ts, level, creator, message) VALUES (?,?,?,?,?,?)",
        (tenant_id, client_id, ts or now_ms(), level, creator, message),
    )


def note(conn, tenant_id, client_id, level, message, ts=None):
    """A log line written by InstaMsg itself (creator ``InstaMsg``)."""
    log(conn, tenant_id, client_id, level, "InstaMsg", message, ts)


# -- representations ------------------------------------------------------------


def tenant_view(row):
    counts = db().one(
        "SELECT (SELECT COUNT(*) FROM clients WHERE tenant_id = ?1) AS clients,"
        " (SELECT COUNT(*) FROM messages WHERE tenant_id = ?1) AS messages",
        row["id"],
    )
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "max_clients": row["max_clients"],
        "max_messages": row["max_messages"],
        "active": bool(row["active"]),
        "clients": counts["clients"],
        "messages": counts["messages"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def last_seen(row):
    found = db().one(
        'SELECT MAX("end") AS seen FROM sessions WHERE tenant_id = ? AND client_id = ?',
        row["tenant_id"],
        row["id"],
    )
    return found["seen"]


def state_of(row):
    seen = last_seen(row)
    return "online" if seen is not None and seen >= now_ms() - SESSION_GAP_MS else "offline"


def client_view(row):
    provisioning = loads(row["provisioning"])
    return {
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "type": row["type"],
        "name": row["name"],
        "description": row["description"],
        "sub_topics": loads(row["sub_topics"]),
        "pub_topics": loads(row["pub_topics"]),
        "secure_cert_enabled": bool(row["secure_cert_enabled"]),
        "provisioning_params": {k: v for k, v in provisioning.items() if k not in HIDDEN},
        "state": state_of(row),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def message_view(row):
    return {
        "id": str(row["id"]),
        "message_id": row["message_id"],
        "type": row["type"],
        "topic": row["topic"],
        "payload": row["payload"],
        "qos": row["qos"],
        "duplicate": row["duplicate"],
        "status": row["status"],
        "created_at": row["created_at"],
    }


def new_certificate() -> str:
    body = base64.encodebytes(secrets.token_bytes(96)).decode().strip()
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"


def fingerprint(certificate: str) -> str:
    return hashlib.sha256(certificate.encode()).hexdigest()
