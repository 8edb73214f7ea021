"""Managed tokens: blocks called with clientKey and clientSecret instead of accessToken.

The connector gets a token with the app's credentials, keeps it (per process, keyed
by a hash of the credentials, never the secret itself) until shortly before it
expires, lets one refresh run at a time per credential pair, and after an upstream
401 renews once and sends the call once more.

With a shared cache (``connector.state.redis_store.RedisTokenCache``, when REDIS_URL is set) the
token is also kept in Redis and one fetch per credential pair serves every instance: the
fetch runs under a Redis lock, and the others wait for it and read what it stored. When
Redis does not answer, the call goes on with the per-process cache and lock alone; the
next call tries Redis again, so it is used again as soon as it answers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from connector import logs, metrics
from connector.errors import ApiError
from connector.state.fingerprint import fingerprint
from connector.upstream.outcomes import json_result, status_rule

#: how many locks the per-process token cache spreads credential pairs over
LOCK_STRIPES = 64


@dataclass
class Held:
    token: str
    renew_at: float


class TokenManager:
    """Gets, keeps and renews managed tokens; ``send`` runs a block's call with one.

    ``shared`` is an optional cache every instance sees (a ``RedisTokenCache``); without it
    tokens live in this process only. ``fetches`` counts the token requests this process
    sent to InstaMsg."""

    #: renew this long before the token's end, at most (seconds); a tenth of its life if shorter
    MARGIN = 60.0

    def __init__(self, upstream, registry, clock=time.monotonic, shared=None):
        self.upstream = upstream
        self.registry = registry
        self.clock = clock
        self.shared = shared
        self._held: dict[str, Held] = {}
        # A fixed set of locks, picked by the credentials' fingerprint: a lock per pair ever
        # tried (wrong ones too) would grow without end.
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self.fetches = 0
        #: Redis failed on the last try: logged once, and again when it answers
        self._shared_down = False

    def _lock(self, key: str) -> threading.Lock:
        return self._locks[int(key[:8], 16) % LOCK_STRIPES]

    def _fresh(self, key: str, stale: str | None) -> str | None:
        held = self._held.get(key)
        if held is not None and held.token != stale and self.clock() < held.renew_at:
            return held.token
        return None

    def _hold(self, key: str, token: str, life: float) -> None:
        """Keep ``token`` in this process for ``life`` seconds."""
        self._held[key] = Held(token, self.clock() + max(0.0, life))

    def token(self, client_key: str, client_secret: str, request_id=None, stale=None) -> str:
        """A valid token for these credentials; ``stale`` is one InstaMsg just refused."""
        key = fingerprint(client_key, client_secret)
        token = self._fresh(key, stale)
        if token is not None:
            return token
        # The per-process lock comes first even with Redis: one thread per process waits on
        # the shared lock, the others wait here and then find the token in _held.
        with self._lock(key):
            token = self._fresh(key, stale)  # another call may have renewed it meanwhile
            if token is not None:
                return token
            if self.shared is not None:
                token = self._shared_token(key, client_key, client_secret, request_id, stale)
                if token is not None:
                    return token
            token, life = self._fetch_life(client_key, client_secret, request_id)
            self._hold(key, token, life)
            return token

    def _shared_token(self, key, client_key, client_secret, request_id, stale) -> str | None:
        """The token through Redis: the one it holds, else one fetched under its lock and
        stored there. None when Redis failed before a fetch: the caller fetches alone."""
        try:
            token = self._read_shared(key, stale)
            if token is not None:
                return token
            lock = self.shared.lock(key)
            owned = lock.acquire()  # False after the wait: the holder is slow, go on alone
        except self.shared.faults as exc:  # Redis is down: this process carries on alone
            self._shared_failed(exc)
            return None
        try:
            try:
                # Compared with ``stale`` here, under the lock: a token InstaMsg refused is
                # fetched anew, once, and what another instance fetched meanwhile is used.
                token = self._read_shared(key, stale)
            except self.shared.faults as exc:
                self._shared_failed(exc)
                token = None
            if token is not None:
                return token
            token, life = self._fetch_life(client_key, client_secret, request_id)
            self._hold(key, token, life)
            try:
                self.shared.write(key, token, life)
            except self.shared.faults as exc:  # the token is good; only sharing it failed
                self._shared_failed(exc)
            return token
        finally:
            if owned:
                # A lock that expired or cannot be reached ends by itself (its timeout).
                with contextlib.suppress(*self.shared.faults):
                    lock.release()

    def _read_shared(self, key: str, stale: str | None) -> str | None:
        found = self.shared.read(key)
        if self._shared_down:
            self._shared_down = False
            logs.event("managed tokens: redis answers again; tokens are shared")
        if found is None or found[0] == stale:
            return None
        token, left = found
        self._hold(key, token, left)
        return token

    def _shared_failed(self, exc: BaseException) -> None:
        if not self._shared_down:
            self._shared_down = True
            logs.event(
                "managed tokens: redis unavailable; using this process's cache",
                logging.WARNING,
                store=self.shared.describe(),
                fault=type(exc).__name__,
            )

    def _fetch_life(self, client_key, client_secret, request_id) -> tuple[str, float]:
        """A new token and how long to keep it: its lifetime less the renewal margin."""
        token, lifetime = self._fetch(client_key, client_secret, request_id)
        margin = min(self.MARGIN, lifetime / 10)
        return token, max(0.0, lifetime - margin)

    def _fetch(self, client_key, client_secret, request_id) -> tuple[str, float]:
        self.fetches += 1
        metrics.TOKEN_FETCHES.inc()
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
        # Which credentials: the first 12 hex digits of their one-way fingerprint, never them.
        logs.event(
            "token fetched",
            request_id=request_id,
            app=fingerprint(client_key, client_secret)[:12],
            expires_in_s=lifetime,
            shared=self.shared is not None,
        )
        return token, lifetime

    def send(self, blk, args: dict, request_id, secrets: list, file_part=None, watch=None):
        """Send a block's call; with managed credentials, get the token and renew once on 401.
        ``file_part`` is the multipart body's file (``Block.build``). ``watch`` (a keyed
        call's SendWatch) is told about the block's own attempts, not about token fetches:
        those change nothing in InstaMsg that a retry could repeat."""

        def build():
            call = blk.build(args, file_part)
            call.watch = watch
            return call

        managed = blk.auth == "bearer" and "access_token" not in args
        if not managed:
            return self.upstream.send(build(), request_id)
        key, secret = args["client_key"], args["client_secret"]
        args["access_token"] = self.token(key, secret, request_id)
        secrets.append(args["access_token"])
        try:
            return self.upstream.send(build(), request_id)
        except ApiError as error:
            if not error.upstream or not status_rule(error.upstream["status"]).renew_token:
                raise
        # InstaMsg refused the token (revoked, or expired early): a 401 means nothing ran,
        # so one renewed token and one more try are safe for any method.
        args["access_token"] = self.token(key, secret, request_id, stale=args["access_token"])
        secrets.append(args["access_token"])
        return self.upstream.send(build(), request_id)
