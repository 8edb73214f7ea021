"""An emulator of the InstaMsg REST API: same paths, methods, bodies and auth.

It is stateful (SQLite, see store.py) and enforces what InstaMsg enforces:
OAuth2 client credentials, token revocation and expiry, tenant quotas, topic
permissions, in-flight message IDs. Logs, sessions, network logs and metrics
follow from what clients did. Faults can be injected per call (a header) or
by rule (``/_sandbox/faults``), for tests and demos.
"""

from __future__ import annotations

from flask import Flask

from sandbox import activity, faults, oauth, tenants
from sandbox.http import DEMO_APPS, Dropped, SandboxError, SandboxSettings, TimedOut, answer
from sandbox.store import Store

__all__ = ["create_sandbox_app", "Dropped", "TimedOut", "DEMO_APPS"]


def create_sandbox_app(store: Store, *, apps=None, token_ttl=3600, max_file_bytes=256 << 20):
    """The sandbox as a Flask app over ``store``."""
    app = Flask("instamsg-sandbox")
    app.config["MAX_CONTENT_LENGTH"] = max_file_bytes + (1 << 20)
    app.config["MAX_FORM_MEMORY_SIZE"] = 1 << 20
    app.extensions["sandbox"] = SandboxSettings(
        store=store,
        apps=dict(DEMO_APPS if apps is None else apps),
        token_ttl=token_ttl,
        max_file_bytes=max_file_bytes,
    )
    # Order matters: a fault strikes before authentication, as a failing proxy would.
    for module in (faults, oauth, tenants, activity):
        app.register_blueprint(module.bp)

    app.wsgi_app = faults.signal_faults(app.wsgi_app)

    @app.errorhandler(SandboxError)
    def on_error(error):
        return answer({"error": error.error, "message": error.message}, error.status, error.headers)

    @app.errorhandler(404)
    def on_missing_route(_):
        return answer({"error": "not_found", "message": "No such endpoint."}, 404)

    @app.errorhandler(405)
    def on_wrong_method(_):
        return answer({"error": "method_not_allowed", "message": "Method not allowed."}, 405)

    @app.errorhandler(413)
    def on_too_large(_):
        return answer({"error": "too_large", "message": "The request is too large."}, 413)

    return app
