"""Tenants and clients: CRUD, quotas, auth tokens and certificates."""

from __future__ import annotations

import json
import secrets

from flask import Blueprint, g, request

from sandbox.http import (
    CLIENT_TYPES,
    PROVISIONING_KEYS,
    SandboxError,
    answer,
    bad,
    body,
    bound,
    db,
    flag,
    forbidden,
    integer,
    not_found,
    one_of,
    ordering,
    query_flag,
    text,
    topics,
    where,
)
from sandbox.resources import (
    client_row,
    client_view,
    fingerprint,
    new_certificate,
    note,
    tenant_row,
    tenant_view,
)
from sandbox.store import CLIENT_TABLES, loads, now_ms

bp = Blueprint("sandbox_tenants", __name__)


@bp.post("/api/v1/tenants")
def create_tenant():
    data = body()
    name = text(data, "name", required=True)
    description = text(data, "description")
    max_clients = integer(data, "max_clients", required=True, lo=0)
    max_messages = integer(data, "max_messages", required=True, lo=0)
    tenant_id = "t" + secrets.token_hex(6)
    stamp = now_ms()
    with db().transaction() as conn:
        conn.execute(
            "INSERT INTO tenants VALUES (?,?,?,?,?,?,1,?,?)",
            (tenant_id, g.app, name, description, max_clients, max_messages, stamp, stamp),
        )
    return answer(tenant_view(tenant_row(tenant_id)), 201)


@bp.get("/api/v1/tenants")
def list_tenants():
    order = ordering(
        ("id", "name", "created_at", "updated_at", "max_clients", "max_messages"), "created_at"
    )
    active = query_flag("active")
    sql, params = "SELECT * FROM tenants WHERE app = ?", [g.app]
    if active is not None:
        sql += " AND active = ?"
        params.append(int(active))
    return answer([tenant_view(r) for r in db().all(f"{sql} ORDER BY {order}", *params)])


@bp.get("/api/v1/tenants/<tenant_id>")
def show_tenant(tenant_id):
    return answer(tenant_view(tenant_row(tenant_id)))


@bp.put("/api/v1/tenants/<tenant_id>")
def update_tenant(tenant_id):
    tenant_row(tenant_id)
    data = body()
    changes = {
        "name": text(data, "name", required="name" in data),
        "description": text(data, "description"),
        "max_clients": integer(data, "max_clients", lo=0),
        "max_messages": integer(data, "max_messages", lo=0),
    }
    changes = {k: v for k, v in changes.items() if k in data}
    with db().transaction() as conn:
        for key, value in changes.items():
            conn.execute(f"UPDATE tenants SET {key} = ? WHERE id = ?", (value, tenant_id))  # noqa: S608
        conn.execute("UPDATE tenants SET updated_at = ? WHERE id = ?", (now_ms(), tenant_id))
    return answer(tenant_view(tenant_row(tenant_id)))


@bp.delete("/api/v1/tenants/<tenant_id>")
def delete_tenant(tenant_id):
    tenant_row(tenant_id)
    with db().transaction() as conn:
        for table in ("clients", *CLIENT_TABLES):
            conn.execute(f"DELETE FROM {table} WHERE tenant_id = ?", (tenant_id,))  # noqa: S608
        conn.execute("DELETE FROM tenants WHERE id = ?", (tenant_id,))
    return answer({"message": "Tenant deleted.", "id": tenant_id})


# -- clients --------------------------------------------------------------------


def client_fields(data, creating):
    fields = {
        "type": one_of(text(data, "type", required=creating), CLIENT_TYPES, "type"),
        "name": text(data, "name", required=creating),
        "description": text(data, "description"),
        "sub_topics": topics(data, "sub_topics"),
        "pub_topics": topics(data, "pub_topics"),
        "secure_cert_enabled": flag(data, "secure_cert_enabled"),
    }
    fields = {k: v for k, v in fields.items() if k in data}
    provisioning = data.get("provisioning_params")
    if provisioning is None and creating:
        raise bad("provisioning_params.provisioning_id is required.")
    if provisioning is not None:
        if not isinstance(provisioning, dict):
            raise bad("provisioning_params must be an object.")
        unknown = set(provisioning) - set(PROVISIONING_KEYS)
        if unknown:
            raise bad("provisioning_params has unknown keys: " + ", ".join(sorted(unknown)))
        text(provisioning, "provisioning_id", required=creating)
        text(
            provisioning,
            "provisioning_key",
            pattern=r"[A-Za-z0-9]{6,12}",
            hint="provisioning_key must be 6 to 12 letters and digits.",
        )
        text(
            provisioning,
            "gsm_msisdn",
            pattern=r"[0-9]{1,15}",
            hint="gsm_msisdn must be digits only, without the country code.",
        )
        text(
            provisioning,
            "gsm_isd_code",
            pattern=r"\+?[0-9]{1,4}",
            hint="gsm_isd_code must be a country code such as +91.",
        )
        one_of(provisioning.get("gsm_send_sms"), ("0", "1"), "gsm_send_sms")
        for key in ("gsm_apn", "gsm_username", "gsm_password", "gsm_sim_pin"):
            text(provisioning, key)
    return fields, provisioning


def check_provisioning_id_free(conn, provisioning_id, except_client=None):
    for row in conn.execute(
        "SELECT c.id, c.provisioning FROM clients c JOIN tenants t ON t.id = c.tenant_id"
        " WHERE t.app = ?",
        (g.app,),
    ):
        if (
            row["id"] != except_client
            and loads(row["provisioning"]).get("provisioning_id") == provisioning_id
        ):
            raise SandboxError(
                409,
                "conflict",
                f"A client with provisioning_id {provisioning_id!r} already exists.",
            )


@bp.post("/api/v1/tenants/<tenant_id>/clients")
def create_client(tenant_id):
    fields, provisioning = client_fields(body(), creating=True)
    client_id = "c" + secrets.token_hex(6)
    stamp = now_ms()
    with db().transaction() as conn:
        tenant = conn.execute(
            "SELECT * FROM tenants WHERE id = ? AND app = ?", (tenant_id, g.app)
        ).fetchone()
        if tenant is None:
            raise not_found(f"Tenant {tenant_id!r}")
        count = conn.execute(
            "SELECT COUNT(*) FROM clients WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()[0]
        if count >= tenant["max_clients"]:
            raise forbidden(
                "quota_exceeded",
                f"Tenant {tenant_id!r} has reached its max_clients quota "
                f"({tenant['max_clients']}).",
            )
        check_provisioning_id_free(conn, provisioning["provisioning_id"])
        conn.execute(
            "INSERT INTO clients VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                client_id,
                tenant_id,
                fields["type"],
                fields["name"],
                fields.get("description"),
                json.dumps(fields.get("sub_topics") or []),
                json.dumps(fields.get("pub_topics") or []),
                int(bool(fields.get("secure_cert_enabled"))),
                json.dumps(provisioning),
                secrets.token_urlsafe(18),
                new_certificate(),
                stamp,
                stamp,
            ),
        )
        note(conn, tenant_id, client_id, "INFO", f"Client {fields['name']!r} created.")
        if provisioning.get("gsm_send_sms") == "1":
            note(conn, tenant_id, client_id, "INFO", "Provisioning SMS sent to the device.")
    return answer(client_view(client_row(tenant_id, client_id)), 201)


@bp.get("/api/v1/tenants/<tenant_id>/clients")
def list_clients(tenant_id):
    tenant_row(tenant_id)
    order = ordering(("id", "name", "type", "created_at", "updated_at"), "created_at")
    kind = one_of(request.args.get("type"), CLIENT_TYPES, "type")
    secure = query_flag("secure")
    state = one_of(request.args.get("state"), ("online", "offline"), "state")
    clauses, params = [], []
    bound(clauses, params, "type = ?", kind)
    bound(clauses, params, "secure_cert_enabled = ?", None if secure is None else int(secure))
    rows = db().all(
        f"SELECT * FROM clients WHERE tenant_id = ?{where(clauses)} ORDER BY {order}",
        tenant_id,
        *params,
    )
    views = [client_view(r) for r in rows]
    return answer([v for v in views if state is None or v["state"] == state])


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>")
def show_client(tenant_id, client_id):
    return answer(client_view(client_row(tenant_id, client_id)))


@bp.put("/api/v1/tenants/<tenant_id>/clients/<client_id>")
def update_client(tenant_id, client_id):
    row = client_row(tenant_id, client_id)
    fields, provisioning = client_fields(body(), creating=False)
    with db().transaction() as conn:
        for key, value in fields.items():
            if key in ("sub_topics", "pub_topics"):
                value = json.dumps(value or [])
            elif key == "secure_cert_enabled":
                value = int(bool(value))
            conn.execute(f"UPDATE clients SET {key} = ? WHERE id = ?", (value, client_id))  # noqa: S608
        if provisioning:
            merged = {**loads(row["provisioning"]), **provisioning}
            if "provisioning_id" in provisioning:
                check_provisioning_id_free(conn, provisioning["provisioning_id"], client_id)
            conn.execute(
                "UPDATE clients SET provisioning = ? WHERE id = ?",
                (json.dumps(merged), client_id),
            )
        conn.execute("UPDATE clients SET updated_at = ? WHERE id = ?", (now_ms(), client_id))
        note(conn, tenant_id, client_id, "INFO", "Client updated.")
    return answer(client_view(client_row(tenant_id, client_id)))


@bp.delete("/api/v1/tenants/<tenant_id>/clients/<client_id>")
def delete_client(tenant_id, client_id):
    client_row(tenant_id, client_id)
    with db().transaction() as conn:
        for table in CLIENT_TABLES:
            conn.execute(
                f"DELETE FROM {table} WHERE tenant_id = ? AND client_id = ?",  # noqa: S608
                (tenant_id, client_id),
            )
        conn.execute("DELETE FROM clients WHERE id = ?", (client_id,))
    return answer({"message": "Client deleted.", "id": client_id})


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/auth_token")
def show_auth_token(tenant_id, client_id):
    row = client_row(tenant_id, client_id)
    if row["type"] != "user":
        raise bad("Only clients of type user have an auth token.")
    return answer({"client_id": client_id, "auth_token": row["auth_token"]})


def replace_credential(tenant_id, client_id, column, value, what):
    """Give a client a new auth token or certificate; the old one stops working."""
    client_row(tenant_id, client_id)
    with db().transaction() as conn:
        conn.execute(
            f"UPDATE clients SET {column} = ?, updated_at = ? WHERE id = ?",  # noqa: S608
            (value, now_ms(), client_id),
        )
        note(conn, tenant_id, client_id, "WARN", f"{what} reset; the old one no longer works.")


@bp.put("/api/v1/tenants/<tenant_id>/clients/<client_id>/reset_auth_token")
def reset_auth_token(tenant_id, client_id):
    token = secrets.token_urlsafe(18)
    replace_credential(tenant_id, client_id, "auth_token", token, "Auth token")
    return answer({"client_id": client_id, "auth_token": token})


@bp.put("/api/v1/tenants/<tenant_id>/clients/<client_id>/reset_certificate")
def reset_certificate(tenant_id, client_id):
    certificate = new_certificate()
    replace_credential(tenant_id, client_id, "certificate", certificate, "Certificate")
    return answer(
        {
            "client_id": client_id,
            "certificate": certificate,
            "fingerprint": fingerprint(certificate),
        }
    )
