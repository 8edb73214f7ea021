"""OAuth2 client credentials: tokens issued, revoked, expired, and checked on every /api call."""

from __future__ import annotations

import secrets

from flask import Blueprint, g, request

from sandbox.http import answer, bad, db, settings
from sandbox.resources import basic_app, bearer_app
from sandbox.store import now_ms

bp = Blueprint("sandbox_oauth", __name__)


@bp.post("/oauth2/token")
def issue_token():
    grant = request.args.get("grant_type") or request.form.get("grant_type")
    key = basic_app()
    if grant != "client_credentials":
        raise bad("grant_type must be client_credentials.")
    token = secrets.token_urlsafe(24)
    with db().transaction() as conn:
        conn.execute(
            "INSERT INTO tokens (token, app, expires_at) VALUES (?,?,?)",
            (token, key, now_ms() + int(settings().token_ttl * 1000)),
        )
    return answer(
        {"access_token": token, "token_type": "bearer", "expires_in": settings().token_ttl}
    )


@bp.post("/oauth2/invalidate_token")
def revoke_token():
    key = basic_app()
    token = request.args.get("access_token") or request.form.get("access_token")
    if not token:
        raise bad("access_token is required.")
    with db().transaction() as conn:
        conn.execute("UPDATE tokens SET revoked = 1 WHERE token = ? AND app = ?", (token, key))
    return answer({"message": "The access token is invalidated."})


@bp.before_app_request
def authenticate():
    if request.path.startswith("/api/"):
        g.app = bearer_app()
