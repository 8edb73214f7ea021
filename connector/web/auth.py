"""Who may use the HTTP face: with CONNECTOR_API_KEYS set, every route but the probes and the
playground page needs one of the keys in X-API-Key (or, on /api/InstaMsg, RapidAPI's proxy
secret). The engine compares; this module knows the headers and the routes."""

from __future__ import annotations

import hashlib

from connector.engine import Engine, Invocation
from connector.errors import Unauthorized

RAPID_PREFIX = "/api/InstaMsg/"
#: Routes open without an API key: the probes, and the playground page with its assets
#: (the page asks for the key itself; the manifest and the blocks stay behind it).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
OPEN_PREFIXES = ("/playground/",)


def authenticate(engine: Engine, inv: Invocation, headers, path: str) -> None:
    """Raise UNAUTHORIZED unless this request may use ``path``."""
    if engine.open or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return
    given = headers.get("X-API-Key")
    if engine.admits(given):
        inv.identity = "key:" + hashlib.sha256(given.encode()).hexdigest()[:32]
        return
    proxy = engine.settings.rapidapi_proxy_secret
    if (inv.rapid or path == RAPID_PREFIX.rstrip("/")) and engine.admits_proxy(
        headers.get("X-RapidAPI-Proxy-Secret")
    ):
        # RapidAPI's proxy names its user once its secret is right; without a name the
        # caller is counted by address. X-API-Key was not checked here: never counted.
        user = headers.get("X-RapidAPI-User", "")
        if user:
            inv.identity = "rapidapi:" + hashlib.sha256(user.encode()).hexdigest()[:32]
        return
    raise Unauthorized(
        "This connector needs an API key: send it in the X-API-Key header"
        + (" (or X-RapidAPI-Proxy-Secret on /api/InstaMsg)." if proxy else ".")
    )
