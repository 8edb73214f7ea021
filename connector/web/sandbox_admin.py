"""In sandbox mode, ``/_sandbox/*`` (faults, reset) reaches the sandbox's own admin routes
through the same session as every block call."""

from __future__ import annotations

from flask import Blueprint, Response, request

from connector.upstream.sandbox import SANDBOX_URL


def sandbox_admin(upstream) -> Blueprint:
    admin = Blueprint("sandbox_admin", __name__)

    @admin.route("/_sandbox/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
    def forward(rest):
        reply = upstream.session.request(
            request.method,
            f"{SANDBOX_URL}/_sandbox/{rest}",
            params=request.args,
            data=request.get_data(),
            headers={"Content-Type": request.content_type or "application/json"},
        )
        return Response(reply.content or b"{}", reply.status_code, mimetype="application/json")

    return admin
