"""Idempotency-Key: a block call repeated with the same key answers what the first one
answered, and reaches InstaMsg once (the rules are in connector/state/idempotency.py)."""

from __future__ import annotations

from connector.engine.invocation import Invocation
from connector.errors import (
    ConnectorError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidRequest,
)
from connector.server import metrics
from connector.state.fingerprint import fingerprint
from connector.state.idempotency import MAX_KEY, Claim, request_digest

#: Answers an Idempotency-Key does not keep: the call was refused before it ran.
NOT_KEPT = frozenset(
    {
        "REQUIRED_FIELDS",
        "INVALID_FIELDS",
        "INVALID_REQUEST",
        "PAYLOAD_TOO_LARGE",
        "UNKNOWN_BLOCK",
        "UNAUTHORIZED",
        "INTERNAL_PACKAGE_ERROR",
    }
)


def claim(store, inv: Invocation, blk, args, key) -> Claim | None:
    """Claim ``key`` for this call (None: run it), or the answer the key already holds."""
    if not 1 <= len(key) <= MAX_KEY:
        raise InvalidRequest(f"The Idempotency-Key header must be 1 to {MAX_KEY} characters.")
    if "accessToken" in args:
        scope = fingerprint("token", str(args["accessToken"]))
    else:
        scope = fingerprint("app", str(args.get("clientKey")), str(args.get("clientSecret")))
    digest = request_digest(blk.name, args, inv.context_key, inv.rapid)
    try:
        found = store.claim(scope, key, blk.name, digest)
    except ConnectorError:
        metrics.IDEMPOTENCY.labels("unavailable").inc()
        raise
    if found.kind != "new":
        metrics.IDEMPOTENCY.labels("replayed" if found.kind == "replay" else found.kind).inc()
    if found.kind == "reused":
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for another call (other arguments or another "
            "block). Use a new key for a new call."
        )
    if found.kind == "in_use":
        raise IdempotencyKeyInUse(
            "A call with this Idempotency-Key is still running. Wait for it, then send the "
            "same call again to get its answer."
        )
    if found.kind == "replay":
        inv.code = "REPLAYED"
        return found
    inv.claim = (scope, key)
    return None


def keep(store, inv: Invocation, status, headers, body, streamed) -> None:
    """Keep a finished call's answer under its key, or free the key for a retry when the
    call was refused before it ran (or its answer is a stream, too large to keep)."""
    scope, key = inv.claim
    inv.claim = None
    # A bug after InstaMsg answered keeps its answer (the call took effect: a retry must not
    # repeat it); a call InstaMsg never got frees the key for a retry.
    ran = inv.code == "INTERNAL_PACKAGE_ERROR" and inv.upstream_status is not None
    if (inv.code in NOT_KEPT and not ran) or inv.nothing_sent or streamed:
        store.release(scope, key)
        return
    store.complete(scope, key, status, headers, body)


def abandon(store, inv: Invocation) -> None:
    """The answer never went out (the worker is stopping, or a bug): free the key for a
    retry rather than leave it held until its lease runs out."""
    claim_held, inv.claim = inv.claim, None
    store.release(*claim_held)
