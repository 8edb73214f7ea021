"""The connector's WSGI application: ``create_app()``, and ``app`` for gunicorn."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

import blocks  # noqa: F401  (registers every block)
from connector import jsonx, logs
from connector.config import ConfigError, Settings
from connector.dispatch import Connector, read_body
from connector.transport import HTTPTransport, WSGITransport
from connector.upstream import RetryPolicy, Upstream

#: What the in-process sandbox is called: never resolvable, so nothing can leak to a network.
SANDBOX_URL = "http://sandbox.instamsg.invalid"


def sandbox_transport(settings: Settings) -> WSGITransport:
    """A transport whose calls the sandbox app answers inside this process."""
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
    return WSGITransport(sandbox, settings.read_timeout)


def sandbox_admin(transport: WSGITransport, limit: int):
    """In sandbox mode, /_sandbox/* (faults, reset) reaches the sandbox's own admin routes."""

    def handle(environ, call):
        body = read_body(environ, limit)
        headers = {"Content-Type": environ.get("CONTENT_TYPE") or "application/json"}
        reply = transport.send(
            environ.get("REQUEST_METHOD", "GET"), environ["PATH_INFO"], headers, body or None
        )
        content = reply.content or jsonx.dumps({})
        return reply.status_code, [("Content-Type", "application/json")], [content]

    return handle


def create_app(config: Settings | dict | None = None) -> Connector:
    """Build the connector. ``config`` is a Settings, or overrides of the environment's."""
    if isinstance(config, Settings):
        settings = config
    else:
        settings = replace(Settings.from_env(), **(config or {}))
    logs.setup()
    routes = {}
    if settings.sandbox:
        transport = sandbox_transport(settings)
        routes["/_sandbox/"] = sandbox_admin(transport, settings.max_request_bytes)
    else:
        transport = HTTPTransport(
            settings.api_url,
            settings.connect_timeout,
            settings.read_timeout,
            maxsize=settings.upstream_pool_size,
        )
        logs.event("live mode", mode="live", upstream=settings.api_url)
    if not settings.api_keys:
        logs.event(
            "OPEN: CONNECTOR_API_KEYS is not set, so anyone who can reach this port can run "
            "blocks. Set it (comma-separated keys) before exposing the connector.",
            logging.WARNING,
        )
    policy = RetryPolicy(
        settings.retries, settings.retry_base, settings.retry_cap, settings.deadline
    )
    return Connector(settings, Upstream(transport, policy), routes)


try:
    app = create_app()
except ConfigError as error:
    # A setting that does not parse stops the start with one line that names it.
    sys.stderr.write(f"instamsg-connector: configuration error: {error}\n")
    raise SystemExit(2) from None
