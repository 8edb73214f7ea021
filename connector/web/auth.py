"""Who may use the HTTP face: with CONNECTOR_API_KEYS set, every route but the probes and the
playground page needs one of the keys in X-API-Key (or, on /api/InstaMsg, RapidAPI's proxy
secret). The engine compares; this module knows the headers and the routes."""

from __future__ import annotations

import hashlib
import hmac

from connector.engine import Engine, Invocation
from connector.errors import Unauthorized
from connector.hooks.service import SENDER_PREFIX
from connector.web.context import RAPID_PREFIX

#: Routes open without an API key: the probes, and the playground page with its assets
#: (the page asks for the key itself; the manifest and the blocks stay behind it), and a
#: hook's sender URL, whose proof is its signature or token (connector/hooks).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
OPEN_PREFIXES = ("/playground/", SENDER_PREFIX)


def authenticate(engine: Engine, inv: Invocation, headers, path: str) -> None:
    """Raise UNAUTHORIZED unless this request may use ``path``."""
    if engine.keyless or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return
    if engine.identify(inv, headers.get("X-API-Key")):
        return
    proxy = engine.settings.rapidapi_proxy_secret
    if (inv.rapid or path == RAPID_PREFIX.rstrip("/")) and proxy_admits(
        proxy, headers.get("X-RapidAPI-Proxy-Secret")
    ):
        # RapidAPI's proxy names its user once its secret is right; without a name the
        # caller is counted by address. X-API-Key was not checked here: never counted.
        user = headers.get("X-RapidAPI-User", "")
        if user:
            inv.identity = "rapidapi:" + hashlib.sha256(user.encode()).hexdigest()[:32]
        return
    raise Unauthorized.api_key_needed(proxy_secret=bool(proxy))


def proxy_admits(proxy: str, secret: str | None) -> bool:
    """``secret`` is RAPIDAPI_PROXY_SECRET (compared in constant time)."""
    given = (secret or "").encode()
    return bool(proxy and given) and hmac.compare_digest(given, proxy.encode())
