"""What clients do: files, configuration and messages, and what follows from them:
logs, sessions, network logs and metrics."""

from __future__ import annotations

import json
import re

from flask import Blueprint, Response, g, request

from sandbox.http import (
    CREATORS,
    DAY_MS,
    LEVELS,
    MESSAGE_TYPES,
    SESSION_GAP_MS,
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
    query_ms,
    settings,
    text,
    where,
    window,
)
from sandbox.resources import (
    client_row,
    fingerprint,
    last_seen,
    log,
    message_view,
    note,
    state_of,
)
from sandbox.store import loads, now_ms

bp = Blueprint("sandbox_activity", __name__)


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/files")
def list_files(tenant_id, client_id):
    client_row(tenant_id, client_id)
    rows = db().all(
        "SELECT filename, size, content_type, created_at FROM files"
        " WHERE tenant_id = ? AND client_id = ? ORDER BY filename",
        tenant_id,
        client_id,
    )
    return answer([dict(r) for r in rows])


@bp.post("/api/v1/tenants/<tenant_id>/clients/<client_id>/files/<filename>")
def upload_file(tenant_id, client_id, filename):
    client_row(tenant_id, client_id)
    part = request.files.get("uploadedfile")
    if part is None:
        raise bad("Send the file as a multipart part named uploadedfile.")
    content = part.read(settings().max_file_bytes + 1)
    if len(content) > settings().max_file_bytes:
        raise SandboxError(
            413, "too_large", f"Files are limited to {settings().max_file_bytes} bytes."
        )
    kind = part.mimetype or "application/octet-stream"
    with db().transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?)",
            (tenant_id, client_id, filename, content, kind, len(content), now_ms()),
        )
        note(
            conn,
            tenant_id,
            client_id,
            "INFO",
            f"File {filename!r} uploaded ({len(content)} bytes).",
        )
    return answer({"filename": filename, "size": len(content), "content_type": kind}, 201)


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/files/<filename>")
def download_file(tenant_id, client_id, filename):
    client_row(tenant_id, client_id)
    row = db().one(
        "SELECT content, content_type FROM files"
        " WHERE tenant_id = ? AND client_id = ? AND filename = ?",
        tenant_id,
        client_id,
        filename,
    )
    if row is None:
        raise not_found(f"File {filename!r}")
    return Response(bytes(row["content"]), mimetype=row["content_type"])


@bp.delete("/api/v1/tenants/<tenant_id>/clients/<client_id>/files/<filename>")
def delete_file(tenant_id, client_id, filename):
    client_row(tenant_id, client_id)
    with db().transaction() as conn:
        gone = conn.execute(
            "DELETE FROM files WHERE tenant_id = ? AND client_id = ? AND filename = ?",
            (tenant_id, client_id, filename),
        ).rowcount
        if not gone:
            raise not_found(f"File {filename!r}")
        note(conn, tenant_id, client_id, "INFO", f"File {filename!r} deleted.")
    return answer({"message": "File deleted.", "filename": filename})


# -- config ---------------------------------------------------------------------


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/config")
def show_config(tenant_id, client_id):
    client_row(tenant_id, client_id)
    row = db().one(
        "SELECT config, updated_at FROM configs WHERE tenant_id = ? AND client_id = ?",
        tenant_id,
        client_id,
    )
    if row is None:
        return answer({"config": {}, "updated_at": None})
    return answer({"config": loads(row["config"]), "updated_at": row["updated_at"]})


@bp.put("/api/v1/tenants/<tenant_id>/clients/<client_id>/config")
def replace_config(tenant_id, client_id):
    client_row(tenant_id, client_id)
    config = body().get("config")
    if not isinstance(config, dict):
        raise bad("config is required and must be a JSON object.")
    stamp = now_ms()
    with db().transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO configs VALUES (?,?,?,?)",
            (tenant_id, client_id, json.dumps(config), stamp),
        )
        note(
            conn,
            tenant_id,
            client_id,
            "INFO",
            f"Config replaced ({len(config)} keys).",
        )
    return answer({"config": config, "updated_at": stamp})


@bp.delete("/api/v1/tenants/<tenant_id>/clients/<client_id>/config")
def delete_config(tenant_id, client_id):
    client_row(tenant_id, client_id)
    with db().transaction() as conn:
        gone = conn.execute(
            "DELETE FROM configs WHERE tenant_id = ? AND client_id = ?", (tenant_id, client_id)
        ).rowcount
        if not gone:
            raise not_found("Config")
        note(conn, tenant_id, client_id, "INFO", "Config deleted.")
    return answer({"message": "Config deleted."})


# -- messages -------------------------------------------------------------------


def touch_session(conn, row, stamp):
    """A publishing client is connected: extend its session or open a new one."""
    tenant_id, client_id = row["tenant_id"], row["id"]
    current = conn.execute(
        'SELECT id FROM sessions WHERE tenant_id = ? AND client_id = ? AND "end" >= ?'
        ' ORDER BY "end" DESC',
        (tenant_id, client_id, stamp - SESSION_GAP_MS),
    ).fetchone()
    if current is not None:
        conn.execute(
            'UPDATE sessions SET "end" = ?, messages = messages + 1 WHERE id = ?',
            (stamp, current["id"]),
        )
        return
    conn.execute(
        'INSERT INTO sessions (tenant_id, client_id, start, "end", messages) VALUES (?,?,?,?,1)',
        (tenant_id, client_id, stamp, stamp),
    )
    provisioning = loads(row["provisioning"])
    ident = provisioning.get("provisioning_id", "")
    hexed = re.sub(r"[^0-9A-Fa-f]", "", ident)
    mac = hexed.upper() if len(hexed) == 12 and len(ident) in (12, 17) else None
    imei = ident if re.fullmatch(r"[0-9]{15}", ident) else None
    msisdn = provisioning.get("gsm_msisdn")
    network = "gsm" if (imei or msisdn) else ("lan" if mac else "unknown")
    conn.execute(
        "INSERT INTO network_logs (tenant_id, client_id, ts, mac_id, imei, msisdn, iccid, network)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (tenant_id, client_id, stamp, mac, imei, msisdn, None, network),
    )
    note(conn, tenant_id, client_id, "INFO", "Client connected.", stamp)


@bp.post("/api/v1/tenants/<tenant_id>/clients/<client_id>/messages")
def publish(tenant_id, client_id):
    data = body()
    message_id = integer(data, "id", required=True, lo=1, hi=65535)
    kind = one_of(text(data, "type", required=True), MESSAGE_TYPES, "type")
    topic = text(data, "topic", required=True)
    if len(topic.encode()) > 65535:
        raise bad("topic must be at most 65535 bytes.")
    payload = data.get("payload")
    if not isinstance(payload, str):
        raise bad("payload is required and must be a string.")
    qos = integer(data, "qos", required=True, lo=1, hi=3)
    duplicate = flag(data, "duplicate", 0)
    save = flag(data, "save", 1)
    stamp = now_ms()
    with db().transaction() as conn:
        row = conn.execute(
            "SELECT * FROM clients WHERE id = ? AND tenant_id = ?", (client_id, tenant_id)
        ).fetchone()
        tenant = conn.execute(
            "SELECT * FROM tenants WHERE id = ? AND app = ?", (tenant_id, g.app)
        ).fetchone()
        if tenant is None or row is None:
            raise not_found(f"Client {client_id!r} of tenant {tenant_id!r}")
        allowed = loads(row["pub_topics"])
        peer = (
            kind == "p2p"
            and conn.execute(
                "SELECT 1 FROM clients WHERE id = ? AND tenant_id = ?", (topic, tenant_id)
            ).fetchone()
        )
        used = conn.execute(
            "SELECT COUNT(*) FROM messages WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()[0]
        refusal = None
        if topic not in allowed and not peer:
            refusal = forbidden(
                "topic_not_permitted",
                f"Topic {topic!r} is not among the client's pub_topics {allowed}: "
                "add it with updateClient first.",
            )
            note(
                conn,
                tenant_id,
                client_id,
                "WARN",
                f"Publish refused: topic {topic!r} is not permitted.",
            )
        elif used >= tenant["max_messages"]:
            refusal = forbidden(
                "quota_exceeded",
                f"Tenant {tenant_id!r} has reached its max_messages quota "
                f"({tenant['max_messages']}).",
            )
            note(
                conn,
                tenant_id,
                client_id,
                "ERROR",
                "Publish refused: the tenant's message quota is used up.",
            )
        else:
            held = conn.execute(
                "SELECT id FROM messages WHERE tenant_id = ? AND client_id = ?"
                " AND message_id = ? AND status = 'held'",
                (tenant_id, client_id, message_id),
            ).fetchone()
            if held is not None and not duplicate:
                raise SandboxError(
                    409,
                    "message_in_flight",
                    f"Message id {message_id} is still in flight for this client: release "
                    "it, use another id, or set duplicate to re-send it.",
                )
            status = "held" if qos >= 2 else "delivered"
            cursor = conn.execute(
                "INSERT INTO messages (tenant_id, client_id, message_id, type, topic, payload,"
                " qos, duplicate, save, status, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    tenant_id,
                    client_id,
                    message_id,
                    kind,
                    topic,
                    payload,
                    qos,
                    int(duplicate),
                    int(save),
                    status,
                    stamp,
                ),
            )
            touch_session(conn, row, stamp)
            log(
                conn,
                tenant_id,
                client_id,
                "DEBUG",
                "client",
                f"Publishing message {message_id} on {topic!r} (QoS {qos}).",
                stamp,
            )
            note(conn, tenant_id, client_id, "INFO", f"Message {message_id} accepted.", stamp)
    # A refusal is logged (the transaction above committed), then answered.
    if refusal is not None:
        raise refusal
    location = f"/api/v1/tenants/{tenant_id}/clients/{client_id}/messages/{cursor.lastrowid}"
    return answer({"id": str(cursor.lastrowid), "status": status}, 201, {"Location": location})


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/messages")
def list_messages(tenant_id, client_id):
    client_row(tenant_id, client_id)
    clauses, params = window("created_at")
    kind = one_of(request.args.get("type"), MESSAGE_TYPES, "type")
    bound(clauses, params, "type = ?", kind)
    rows = db().all(
        "SELECT * FROM messages WHERE tenant_id = ? AND client_id = ? AND save = 1"
        f"{where(clauses)} ORDER BY created_at, id",
        tenant_id,
        client_id,
        *params,
    )
    return answer([message_view(r) for r in rows])


@bp.put("/api/v1/tenants/<tenant_id>/clients/<client_id>/messages/<message>/release")
def release(tenant_id, client_id, message):
    client_row(tenant_id, client_id)
    with db().transaction() as conn:
        row = (
            conn.execute(
                "SELECT * FROM messages WHERE id = ? AND tenant_id = ? AND client_id = ?",
                (message, tenant_id, client_id),
            ).fetchone()
            if message.isascii() and message.isdigit()
            else None
        )
        if row is None:
            raise not_found(f"Message {message!r}")
        if row["status"] != "held":
            raise SandboxError(
                409,
                "not_held",
                f"Message {message} is {row['status']}, not held: only QoS 2 and 3 messages "
                "are held until released.",
            )
        conn.execute("UPDATE messages SET status = 'released' WHERE id = ?", (row["id"],))
        note(conn, tenant_id, client_id, "INFO", f"Message {row['message_id']} released.")
    return answer({"id": message, "status": "released"})


# -- what follows from activity: info, logs, sessions, network logs, metrics --


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/info")
def client_info(tenant_id, client_id):
    row = client_row(tenant_id, client_id)
    counts = db().one(
        "SELECT"
        " (SELECT COUNT(*) FROM messages WHERE tenant_id = ?1 AND client_id = ?2) AS messages,"
        " (SELECT COUNT(*) FROM sessions WHERE tenant_id = ?1 AND client_id = ?2) AS sessions,"
        " (SELECT COUNT(*) FROM files WHERE tenant_id = ?1 AND client_id = ?2) AS files",
        tenant_id,
        client_id,
    )
    return answer(
        {
            "id": client_id,
            "type": row["type"],
            "state": state_of(row),
            "last_seen": last_seen(row),
            "messages_published": counts["messages"],
            "sessions": counts["sessions"],
            "files": counts["files"],
            "secure_cert_enabled": bool(row["secure_cert_enabled"]),
            "certificate_fingerprint": fingerprint(row["certificate"]),
            "provisioning_id": loads(row["provisioning"]).get("provisioning_id"),
        }
    )


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/logs")
def client_logs(tenant_id, client_id):
    client_row(tenant_id, client_id)
    clauses, params = window("ts")
    level = one_of(request.args.get("level"), LEVELS, "level")
    creator = one_of(request.args.get("creator"), CREATORS, "creator")
    bound(clauses, params, "level = ?", level)
    bound(clauses, params, "creator = ?", creator)
    rows = db().all(
        "SELECT ts, level, creator, message FROM logs WHERE tenant_id = ? AND client_id = ?"
        f"{where(clauses)} ORDER BY ts, id",
        tenant_id,
        client_id,
        *params,
    )
    return answer([dict(r) for r in rows])


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/sessions")
def client_sessions(tenant_id, client_id):
    client_row(tenant_id, client_id)
    order = ordering(("start", "end", "messages"), "start")
    # A session overlaps the window when it ends after its start and starts before its end.
    clauses, params = [], []
    bound(clauses, params, '"end" >= ?', query_ms("start"))
    bound(clauses, params, "start <= ?", query_ms("end"))
    rows = db().all(
        'SELECT id, start, "end", messages FROM sessions WHERE tenant_id = ? AND client_id = ?'
        f"{where(clauses)} ORDER BY {order}",
        tenant_id,
        client_id,
        *params,
    )
    return answer([{**dict(r), "id": str(r["id"])} for r in rows])


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/network_logs")
def network_logs(tenant_id, client_id):
    client_row(tenant_id, client_id)
    order = ordering(("ts", "network"), "ts")
    clauses, params = window("ts")
    for key in ("mac_id", "imei", "msisdn", "iccid"):
        bound(clauses, params, f"{key} = ?", request.args.get(key))
    rows = db().all(
        "SELECT ts, mac_id, imei, msisdn, iccid, network FROM network_logs"
        f" WHERE tenant_id = ? AND client_id = ?{where(clauses)} ORDER BY {order}",
        tenant_id,
        client_id,
        *params,
    )
    return answer([dict(r) for r in rows])


@bp.get("/api/v1/tenants/<tenant_id>/clients/<client_id>/metrics")
def client_metrics(tenant_id, client_id):
    client_row(tenant_id, client_id)
    interval = one_of(request.args.get("interval", "day"), ("day", "month"), "interval")
    until = now_ms()
    since = until - (DAY_MS if interval == "day" else 30 * DAY_MS)
    key = (tenant_id, client_id, since)
    messages = db().one(
        "SELECT COUNT(*) AS n, COALESCE(SUM(save), 0) AS saved,"
        " COALESCE(SUM(LENGTH(CAST(payload AS BLOB))), 0)"
        " AS bytes FROM messages WHERE tenant_id = ? AND client_id = ? AND created_at >= ?",
        *key,
    )
    sessions = db().one(
        'SELECT COUNT(*) AS n FROM sessions WHERE tenant_id = ? AND client_id = ? AND "end" >= ?',
        *key,
    )
    levels = db().all(
        "SELECT level, COUNT(*) AS n FROM logs"
        " WHERE tenant_id = ? AND client_id = ? AND ts >= ? GROUP BY level",
        *key,
    )
    return answer(
        {
            "interval": interval,
            "from": since,
            "to": until,
            "messages_published": messages["n"],
            "messages_stored": messages["saved"],
            "payload_bytes": messages["bytes"],
            "sessions": sessions["n"],
            "logs": {r["level"]: r["n"] for r in levels},
        }
    )
