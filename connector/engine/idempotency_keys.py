"""Idempotency-Key: a block call repeated with the same key answers what the first one
answered, and reaches InstaMsg at most once, whatever fails (the key's life is told in
connector/state/idempotency.py; what each outcome settles is decided here)."""

from __future__ import annotations

import time

from connector.engine.invocation import Invocation
from connector.errors import (
    ConnectorError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidRequest,
)
from connector.server import metrics
from connector.state.fingerprint import fingerprint
from connector.state.idempotency import (
    MAX_KEY,
    Claim,
    Lifetimes,
    SendWatch,
    outcome_unknown,
    request_digest,
)

#: What an Idempotency-Key keeps once its call may have reached InstaMsg: an answer InstaMsg
#: gave definitely (a success, or a 4xx refusal). Anything else after sending (a timeout, a
#: broken connection, a 5xx, a bug) leaves the outcome unknown: the key answers
#: OUTCOME_UNKNOWN. A call that certainly sent nothing keeps nothing: its key is freed.
KEPT_CODES = frozenset({"SUCCESS", "API_ERROR"})
#: The arguments that say who calls InstaMsg, not what is asked of it.
CREDENTIALS = frozenset({"accessToken", "clientKey", "clientSecret"})


def check_form(key: str) -> None:
    """A malformed key is refused on every block, the ones that ignore keys too."""
    if not 1 <= len(key) <= MAX_KEY:
        raise InvalidRequest(f"The Idempotency-Key header must be 1 to {MAX_KEY} characters.")


def claim(store, settings, inv: Invocation, blk, args, key) -> Claim | None:
    """Claim ``key`` for this call (None: run it), or the answer the key already holds."""
    check_form(key)
    # A key belongs to the connector's caller as the face checked it (its API key, RapidAPI's
    # user), not to an access token: a flow that renewed its token before retrying must find
    # its key, so the credentials are no part of what the key must match. An anonymous
    # caller (no CONNECTOR_API_KEYS) shares one scope with every other, and is told apart
    # by the InstaMsg app it acts as: its kept answers go to that app's calls only.
    scope = fingerprint("caller", inv.identity or "")
    asked = {k: v for k, v in args.items() if k not in CREDENTIALS}
    try:
        who = principal(store, inv, args)
        digest = request_digest(blk.name, asked, inv.context_key, inv.rapid, who)
        found = store.claim(scope, key, blk.name, digest)
    except ConnectorError:
        metrics.IDEMPOTENCY.labels("unavailable").inc()
        raise
    if found.kind != "new":
        metrics.IDEMPOTENCY.labels("replayed" if found.kind == "replay" else found.kind).inc()
    if found.kind == "reused":
        other = (
            "other arguments, another block or another InstaMsg app"
            if who
            else ("other arguments or another block")
        )
        raise IdempotencyKeyReused(
            f"This Idempotency-Key was used for another call ({other}). "
            "Use a new key for a new call."
        )
    if found.kind == "in_use":
        raise IdempotencyKeyInUse(
            "A call with this Idempotency-Key is still running. Wait for it, then send the "
            "same call again to get its answer."
        )
    if found.kind == "abandoned":  # the key's answer: its call may have run, outcome unknown
        raise outcome_unknown(replayed=True)
    if found.kind == "replay":
        inv.code = "REPLAYED"
        return found
    inv.claim = (scope, key, found.owner)
    # From the claim on, the call must not start sending past send_by: its lease would end
    # while it runs and a retry could find it abandoned (connector.state.idempotency.Lifetimes).
    inv.watch = SendWatch(time.monotonic() + Lifetimes.of(settings).send_by)
    return None


def principal(store, inv: Invocation, args) -> str:
    """Who an anonymous caller's keyed call acts as in InstaMsg ("" for a caller the face
    identified: its scope says who it is). A kept answer may only go to a caller who could
    have made the call itself:

    - with clientKey and clientSecret, the app they name (both: the key alone is no proof);
    - with an accessToken the connector handed out (getAccessToken, any face), the app it
      was issued to, so a retry with a renewed token of the same app still replays;
    - with any other token, that token alone: a token from elsewhere cannot be tied to an
      app, and a retry with another one is refused, never answered with another's result.
    """
    if inv.identity is not None:
        return ""
    token = args.get("accessToken")
    if isinstance(token, str) and token:
        name = token_name(token)
        return store.owner_of(name) or "token:" + name
    client_key, client_secret = args.get("clientKey"), args.get("clientSecret")
    if isinstance(client_key, str) and isinstance(client_secret, str):
        return app_name(client_key, client_secret)
    return ""


def token_name(token: str) -> str:
    return fingerprint("access token", token)


def app_name(client_key: str, client_secret: str) -> str:
    return "app:" + fingerprint("app", client_key, client_secret)


#: How long a handed-out token stays tied to its app when InstaMsg does not say (seconds).
TOKEN_LIFE = 3600.0


def tie_token(store, inv: Invocation, args, result) -> None:
    """getAccessToken answered an anonymous caller: remember which app the token is for,
    so that the app's keyed calls with it (or with a later token) share their keys."""
    if inv.identity is not None or not isinstance(result, dict):
        return
    token, life = result.get("access_token"), result.get("expires_in")
    client_key, client_secret = args.get("clientKey"), args.get("clientSecret")
    if not (isinstance(token, str) and token and isinstance(client_key, str)):
        return
    if not isinstance(client_secret, str):
        return
    ttl = float(life) if isinstance(life, int | float) and life > 0 else TOKEN_LIFE
    store.tie(token_name(token), app_name(client_key, client_secret), ttl)


def keep(store, inv: Invocation, status, headers, body, streamed) -> bool:
    """Settle a keyed call's key once the face has its answer; False when the face must answer
    OUTCOME_UNKNOWN instead (to this caller too, so the first answer and every replay agree).

    - Nothing reached InstaMsg (refused before sending, a failed token fetch, a connect
      error, an upstream 429): the key is freed, so a retry with it runs.
    - InstaMsg answered definitely (a success, a 4xx): the answer is kept for replays.
    - Otherwise the call may have taken effect and nobody knows: the key answers
      OUTCOME_UNKNOWN. The same when the answer could not be kept: never a success for a key
      left unsettled.
    """
    scope, key, owner = inv.claim
    inv.claim = None
    watch = inv.watch
    try:
        if watch is None or not watch.may_have_sent:
            store.release(scope, key, owner)
            return True
        definite = inv.code in KEPT_CODES and (
            inv.code == "SUCCESS" or (inv.upstream_status or 500) < 500
        )
        if definite and not streamed:
            if store.complete(scope, key, owner, status, headers, body):
                return True
        else:
            store.settle_unknown(scope, key, owner)
    except ConnectorError:
        pass  # logged by the store; the claim's lease ends it as OUTCOME_UNKNOWN
    metrics.IDEMPOTENCY.labels("unknown").inc()
    return False


def abandon(store, inv: Invocation) -> None:
    """The answer never went out: the worker is stopping (the request's greenlet was killed
    after the graceful timeout) or a bug. A call that may have sent keeps OUTCOME_UNKNOWN;
    only one that certainly sent nothing frees its key."""
    held, inv.claim = inv.claim, None
    try:
        if inv.watch is not None and inv.watch.may_have_sent:
            store.settle_unknown(*held)
        else:
            store.release(*held)
    except ConnectorError:
        pass  # logged by the store; the claim's lease ends it as OUTCOME_UNKNOWN
