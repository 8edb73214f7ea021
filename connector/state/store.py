"""The idempotency store's interface, which every store answers alike: what a key holds
(``Claim``), the steps of a key's life, and the one error a store raises when it cannot be
read or written (IDEMPOTENCY_UNAVAILABLE). What those steps mean and when each is taken are
the engine's rules (connector/engine/idempotency_keys.py).

``connector.state.sqlite_store.SQLiteIdempotencyStore`` is the store of one machine, shared by
its gunicorn workers and surviving restarts; ``connector.state.redis_store.RedisIdempotencyStore``
is the one every instance shares when REDIS_URL is set; ``connector.state.stores`` picks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from connector import logs
from connector.errors import IdempotencyUnavailable

UNAVAILABLE = (
    "The Idempotency-Key store is not answering, so this call was not sent to InstaMsg. "
    "Send it again with the same Idempotency-Key in a few seconds; calls without an "
    "Idempotency-Key keep working."
)
#: The Retry-After of IDEMPOTENCY_UNAVAILABLE: long enough for a Redis restart or failover.
RETRY_AFTER = 5.0


def unavailable(fault: str | None = None) -> IdempotencyUnavailable:
    return IdempotencyUnavailable(UNAVAILABLE, retry_after_s=RETRY_AFTER, fault=fault)


def store_fault(store: str, step: str, exc: BaseException) -> IdempotencyUnavailable:
    """Log a store fault (its kind, never its text) and make the error that answers it."""
    kind = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    logs.event("idempotency store unavailable", logging.WARNING, store=store, step=step, fault=kind)
    return unavailable(fault=kind)  # the kind: what /readyz names


@dataclass
class Claim:
    """What the store says about a key: ``new`` (run it; ``owner`` names this claim),
    ``replay`` (with the kept answer), ``reused`` (other arguments), ``in_use`` (the first
    call still runs) or ``abandoned`` (its call may have run and its outcome is unknown:
    answer OUTCOME_UNKNOWN)."""

    kind: str
    status: int | None = None
    headers: list | None = None
    body: bytes | None = None
    owner: str | None = None


def new_owner() -> str:
    return os.urandom(12).hex()


class IdempotencyStore:
    """The interface; see SQLiteIdempotencyStore. Every method raises
    ``IdempotencyUnavailable`` when the store cannot be read or written."""

    #: seconds a claim stays ``running`` before it counts as abandoned
    lease: float

    def claim(self, scope, key, block, request) -> Claim:
        """Claim ``key`` for a call, or say what it holds (see ``Claim``)."""
        raise NotImplementedError

    def complete(self, scope, key, owner, status, headers, body) -> bool:
        """Keep a claimed call's finished answer for replays (as the engine bounded it).
        False when the claim is no longer ``owner``'s (its lease ran out and it was settled
        as unknown)."""
        raise NotImplementedError

    def settle_unknown(self, scope, key, owner) -> None:
        """The claimed call may have reached InstaMsg and its outcome is unknown: the key
        answers OUTCOME_UNKNOWN from now on."""
        raise NotImplementedError

    def release(self, scope, key, owner) -> None:
        """Free a claimed key: its call certainly sent nothing."""
        raise NotImplementedError

    def check(self) -> str | None:
        """Readiness: None when the store takes a write, else a short text naming what failed."""
        raise NotImplementedError

    def tie(self, token: str, principal: str, ttl: float) -> None:
        """Remember for ``ttl`` seconds that the access token named ``token`` (a fingerprint,
        never the token) was issued to ``principal``: an anonymous caller's keys follow its
        InstaMsg app across renewed tokens (connector.engine.idempotency_keys)."""
        raise NotImplementedError

    def untie(self, token: str) -> None:
        """Forget ``tie``'s principal for ``token`` (the token was invalidated)."""
        raise NotImplementedError

    def owner_of(self, token: str) -> str | None:
        """The principal ``tie`` named for ``token``, or None (unknown, or expired)."""
        raise NotImplementedError
