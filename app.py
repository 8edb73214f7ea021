"""The connector's Flask application: ``create_app()``, the factory, and ``serve()``, the
same factory as the HTTP server starts it (``gunicorn -c gunicorn.conf.py 'app:serve()'``).

``create_app`` is the one place that wires settings, the upstream client, the engine and
the faces around it (the HTTP blueprint, the playground, rate limits, the CLI). Importing any
module of the connector, this one included, builds nothing; Flask's CLI (``flask --app app``)
finds and calls ``create_app`` itself.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import blocks  # noqa: F401  (registers every block)
from connector import cli, logs
from connector.config import ConfigError, Settings, with_sandbox_default
from connector.engine.build import build_engine
from connector.events.service import Events
from connector.hooks.service import Hooks
from connector.web import blueprint, hooks, playground, ratelimit
from connector.web import subscriptions as subscription_routes
from connector.web.body import ConnectorRequest
from connector.web.envelope import register_errors
from connector.web.sandbox_admin import sandbox_admin


def create_app(config: Settings | dict | None = None) -> Flask:
    """Build the connector. ``config`` is a Settings, or overrides of the environment's
    (under ``flask --app app``, sandbox mode is the default, as with ``make run``)."""
    if isinstance(config, Settings):
        settings = config
    else:
        settings = replace(environment_settings(), **(config or {}))
    logs.setup()
    app = Flask(__name__)
    app.request_class = ConnectorRequest
    if settings.proxy_hops:
        # werkzeug's ProxyFix: trust exactly that many X-Forwarded-For hops, no more.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        # Form fields may be as large as the body (fileContent in a form).
        MAX_FORM_MEMORY_SIZE=settings.max_request_bytes,
    )
    engine = build_engine(settings)
    app.extensions["instamsg"] = engine
    app.register_blueprint(blueprint.bp)
    app.register_blueprint(playground.bp)
    app.extensions["instamsg_hooks"] = Hooks(engine)
    app.register_blueprint(hooks.bp)
    ratelimit.install(app, settings)
    if settings.sandbox:
        app.register_blueprint(sandbox_admin(engine.upstream))
    register_errors(app)
    app.cli.add_command(cli.blocks)
    app.cli.add_command(cli.hooks)
    install_events(app, settings, engine)
    return app


def install_events(app: Flask, settings: Settings, engine) -> None:
    """The instant triggers (connector/events): /subscriptions, and the CLI's
    ``subscriptions`` and ``events`` groups."""
    hooks_service = app.extensions["instamsg_hooks"]
    events = Events(settings, engine, queue_source=lambda: hooks_service.queue)
    # Deliveries are a second task on the hooks' queue: its consumer (hooks worker) runs both.
    hooks_service.more_tasks.append(events.register)
    app.extensions["events"] = events
    app.register_blueprint(subscription_routes.bp)
    app.cli.add_command(cli.subscriptions)
    app.cli.add_command(cli.events)


def environment_settings() -> Settings:
    """The settings of this process's environment. A setting that does not parse stops the
    process (the server's start, a CLI command) with one line that names it."""
    try:
        return Settings.from_env(with_sandbox_default(os.environ))
    except ConfigError as error:
        sys.stderr.write(f"instamsg-connector: configuration error: {error}\n")
        raise SystemExit(2) from None


def serve() -> Flask:
    """The app as the HTTP server runs it: built from the environment, with the lines an
    operator needs at its start (the mode, and a warning when anyone may call it)."""
    app = create_app()
    engine = app.extensions["instamsg"]
    engine.announce()
    if engine.keyless:
        logs.event(
            "OPEN: CONNECTOR_API_KEYS is not set, so anyone who can reach this port can run "
            "blocks. Set it (comma-separated keys) before exposing the connector.",
            logging.WARNING,
        )
    return app
