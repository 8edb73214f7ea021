"""Managed tokens: blocks called with clientKey and clientSecret instead of accessToken.

The connector gets a token with the app's credentials, keeps it (per process, keyed
by a hash of the credentials, never the secret itself) until shortly before it
expires, lets one refresh run at a time per credential pair, and after an upstream
401 renews once and sends the call once more.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from connector.errors import ApiError
from connector.upstream import json_result


def fingerprint(*parts: str) -> str:
    """A stable, one-way name for credentials (cache keys, idempotency scopes)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


@dataclass
class Held:
    token: str
    renew_at: float


class TokenManager:
    #: renew this long before the token's end, at most (seconds); a tenth of its life if shorter
    MARGIN = 60.0

    def __init__(self, upstream, registry, clock=time.monotonic):
        self.upstream = upstream
        self.registry = registry
        self.clock = clock
        self._held: dict[str, Held] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetches = 0

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _fresh(self, key: str, stale: str | None) -> str | None:
        held = self._held.get(key)
        if held is not None and held.token != stale and self.clock() < held.renew_at:
            return held.token
        return None

    def token(self, client_key: str, client_secret: str, request_id=None, stale=None) -> str:
        """A valid token for these credentials; ``stale`` is one InstaMsg just refused."""
        key = fingerprint(client_key, client_secret)
        token = self._fresh(key, stale)
        if token is not None:
            return token
        with self._lock(key):
            token = self._fresh(key, stale)  # another call may have renewed it meanwhile
            if token is not None:
                return token
            token, lifetime = self._fetch(client_key, client_secret, request_id)
            margin = min(self.MARGIN, lifetime / 10)
            self._held[key] = Held(token, self.clock() + max(0.0, lifetime - margin))
            return token

    def _fetch(self, client_key, client_secret, request_id) -> tuple[str, float]:
        self.fetches += 1
        blk = self.registry.get("getAccessToken")
        call = blk.build({"client_key": client_key, "client_secret": client_secret})
        body = json_result(self.upstream.send(call, request_id))
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ApiError("InstaMsg answered the token request without an access_token.")
        try:
            lifetime = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        return token, lifetime

    def send(self, blk, args: dict, request_id, secrets: list):
        """Send a block's call; with managed credentials, get the token and renew once on 401."""
        managed = blk.auth == "bearer" and "access_token" not in args
        if not managed:
            return self.upstream.send(blk.build(args), request_id)
        key, secret = args["client_key"], args["client_secret"]
        args["access_token"] = self.token(key, secret, request_id)
        secrets.append(args["access_token"])
        try:
            return self.upstream.send(blk.build(args), request_id)
        except ApiError as error:
            if not error.upstream or error.upstream.get("status") != 401:
                raise
        # InstaMsg refused the token (revoked, or expired early): a 401 means nothing ran,
        # so one renewed token and one more try are safe for any method.
        args["access_token"] = self.token(key, secret, request_id, stale=args["access_token"])
        secrets.append(args["access_token"])
        return self.upstream.send(blk.build(args), request_id)
