"""The connector's WSGI application: ``create_app()``, and ``app`` for gunicorn."""

from __future__ import annotations

from dataclasses import dataclass, replace

from flask import Flask

import blocks  # noqa: F401  (registers every block)
from connector import dispatch, logs
from connector.config import Settings
from connector.upstream import Upstream


@dataclass
class State:
    settings: Settings
    upstream: Upstream


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
    upstream = Upstream(settings.api_url, settings.connect_timeout, settings.read_timeout)
    app.extensions["instamsg"] = State(settings=settings, upstream=upstream)
    dispatch.install(app)
    return app


app = create_app()
