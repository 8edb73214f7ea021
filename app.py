"""The connector's WSGI application: ``create_app()``, and ``app`` for gunicorn."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from flask import Flask, Response, request

import blocks  # noqa: F401  (registers every block)
from connector import dispatch, logs
from connector.config import Settings
from connector.upstream import Upstream, make_session

#: The sandbox's base URL in-process: never resolvable, so nothing can leak to a network.
SANDBOX_URL = "http://sandbox.instamsg.invalid"


@dataclass
class State:
    settings: Settings
    upstream: Upstream


def sandbox_upstream(settings: Settings) -> Upstream:
    """An upstream client whose calls the sandbox app answers inside this process."""
    from connector.inprocess import WSGIAdapter
    from sandbox.app import create_sandbox_app
    from sandbox.store import Store

    store = Store(Path(settings.data_dir) / "sandbox.sqlite3")
    sandbox = create_sandbox_app(
        store, apps=settings.sandbox_apps, token_ttl=settings.sandbox_token_ttl
    )
    session = make_session()
    session.mount(SANDBOX_URL, WSGIAdapter(sandbox))
    logs.event(
        "SANDBOX MODE: every block is answered by the embedded InstaMsg sandbox; no request "
        "leaves this process. Set INSTAMSG_SANDBOX=0 to call InstaMsg.",
        mode="sandbox",
        data=str(store.path),
    )
    return Upstream(SANDBOX_URL, settings.connect_timeout, settings.read_timeout, session)


def install_sandbox_admin(app: Flask, upstream: Upstream) -> None:
    """In sandbox mode, /_sandbox/* (faults, reset) reaches the sandbox's own admin routes."""

    @app.route("/_sandbox/<path:rest>", methods=["GET", "POST", "DELETE"])
    def sandbox_admin(rest):
        answer = upstream.session.request(
            request.method,
            f"{SANDBOX_URL}/_sandbox/{rest}",
            data=request.get_data(),
            headers={"Content-Type": request.content_type or "application/json"},
        )
        return Response(answer.content, answer.status_code, content_type="application/json")


def create_app(config: Settings | dict | None = None) -> Flask:
    """Build the connector. ``config`` is a Settings, or overrides of the environment's."""
    if isinstance(config, Settings):
        settings = config
    else:
        settings = replace(Settings.from_env(), **(config or {}))
    logs.setup()
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_request_bytes,
    )
    if settings.sandbox:
        upstream = sandbox_upstream(settings)
        install_sandbox_admin(app, upstream)
    else:
        upstream = Upstream(settings.api_url, settings.connect_timeout, settings.read_timeout)
        logs.event("live mode", mode="live", upstream=settings.api_url)
    app.extensions["instamsg"] = State(settings=settings, upstream=upstream)
    dispatch.install(app)
    return app


app = create_app()
