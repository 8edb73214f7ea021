"""The connector's Flask application: ``create_app()``, and ``app`` for gunicorn."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

from flask import Blueprint, Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

import blocks  # noqa: F401  (registers every block)

# cli first: under `flask --app app`, it makes sandbox mode the default before create_app().
from connector import cli, dispatch, logs, playground, ratelimit
from connector.config import ConfigError, Settings
from connector.sandbox_adapter import SANDBOX_URL, SandboxAdapter
from connector.upstream import RetryPolicy, Upstream, upstream_session


def sandbox_session(settings: Settings):
    """A session whose calls the sandbox app answers inside this process."""
    from sandbox.app import create_sandbox_app
    from sandbox.store import Store

    store = Store(Path(settings.data_dir) / "sandbox.sqlite3")
    sandbox = create_sandbox_app(
        store, apps=settings.sandbox_apps, token_ttl=settings.sandbox_token_ttl
    )
    logs.event(
        "SANDBOX MODE: every block is answered by the embedded InstaMsg sandbox; no request "
        "leaves this process. Set INSTAMSG_SANDBOX=0 to call InstaMsg.",
        mode="sandbox",
        data=str(store.path),
    )
    session = upstream_session(replace(settings, api_url=SANDBOX_URL))
    session.mount(SANDBOX_URL + "/", SandboxAdapter(sandbox))
    return session


def sandbox_admin(upstream: Upstream) -> Blueprint:
    """In sandbox mode, /_sandbox/* (faults, reset) reaches the sandbox's own admin routes."""
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


def create_app(config: Settings | dict | None = None) -> Flask:
    """Build the connector. ``config`` is a Settings, or overrides of the environment's."""
    if isinstance(config, Settings):
        settings = config
    else:
        settings = replace(Settings.from_env(), **(config or {}))
    logs.setup()
    app = Flask(__name__)
    app.request_class = dispatch.ConnectorRequest
    if settings.proxy_hops:
        # werkzeug's ProxyFix: trust exactly that many X-Forwarded-For hops, no more.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        # Form fields may be as large as the body (fileContent in a form).
        MAX_FORM_MEMORY_SIZE=settings.max_request_bytes,
    )
    policy = RetryPolicy(
        settings.retries, settings.retry_base, settings.retry_cap, settings.deadline
    )
    if settings.sandbox:
        session, base_url = sandbox_session(settings), SANDBOX_URL
    else:
        session, base_url = upstream_session(settings), settings.api_url
        logs.event("live mode", mode="live", upstream=settings.api_url)
    upstream = Upstream(session, base_url, settings.connect_timeout, settings.read_timeout, policy)
    app.extensions["instamsg"] = dispatch.Connector(settings, upstream)
    app.register_blueprint(dispatch.bp)
    app.register_blueprint(playground.bp)
    ratelimit.install(app, settings)
    if settings.sandbox:
        app.register_blueprint(sandbox_admin(upstream))
    dispatch.register_errors(app)
    app.cli.add_command(cli.blocks)
    if not settings.api_keys:
        logs.event(
            "OPEN: CONNECTOR_API_KEYS is not set, so anyone who can reach this port can run "
            "blocks. Set it (comma-separated keys) before exposing the connector.",
            logging.WARNING,
        )
    return app


try:
    app = create_app()
except ConfigError as error:
    # A setting that does not parse stops the start with one line that names it.
    sys.stderr.write(f"instamsg-connector: configuration error: {error}\n")
    raise SystemExit(2) from None
