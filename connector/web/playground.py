"""The playground: a page at ``/`` to try any block in a browser.

The page holds no block of its own: its script reads ``/manifest.json`` at run time and draws
a form per block from the argument list, so the page follows the schemas like the manifest
does. Everything it needs is served from here (no CDN, no outside network), under a
Content-Security-Policy that allows this origin only, so nothing a block answers can run as
script on the page.

Three small JSON facts the page cannot read from the manifest come from
``/playground/config.json``: whether this is sandbox mode (then the page says so and offers
the demo credentials) and whether the connector asks for an API key; and the hooks panel's
choices (the signature schemes and the ways a hook answers). The subscriptions panel needs
no fact of its own: it reads ``/subscriptions`` with the page's key, as any caller would, so
it shows what the API shows and never a secret.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, send_from_directory

from connector import jsonx
from connector.hooks.schemes import SCHEMES
from connector.hooks.service import RESPOND

#: Only this origin: scripts, styles, fetches, images. No inline script or style, no frames.
CSP = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#: The sandbox's documented demo app, offered on the page in sandbox mode only, and only while
#: SANDBOX_APPS has not given it another secret (that one is nobody's to publish).
DEMO = {"clientKey": "demo-key", "clientSecret": "demo-secret"}

bp = Blueprint(
    "playground",
    __name__,
    static_folder="static/playground",
    static_url_path="/playground/static",
)


@bp.get("/")
def page():
    return send_from_directory(bp.static_folder, "index.html", max_age=0)


@bp.get("/playground/config.json")
def config():
    """What the page needs to know about this connector; never a key or a secret of it."""
    settings = current_app.extensions["instamsg"].settings
    facts = {"sandbox": bool(settings.sandbox), "api_keys": bool(settings.api_keys)}
    # The hooks panel's choices, from the hooks' own tables.
    facts["hooks"] = {"schemes": list(SCHEMES), "respond": list(RESPOND)}
    if settings.sandbox and settings.sandbox_apps.get(DEMO["clientKey"]) == DEMO["clientSecret"]:
        facts["demo"] = DEMO
    return Response(jsonx.dumps(facts), mimetype="application/json")


@bp.after_request
def lock_down(response: Response) -> Response:
    """The page and its assets: this origin only, and no guessing of content types."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response
