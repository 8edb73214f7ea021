"""Idempotency-Key: a repeated block call answers what the first one answered, and a key
never runs a call twice.

As Stripe defines it: the first completed answer (status and body, errors from InstaMsg
included) is kept under the key, scoped to the caller (``claim`` says who that is); the
same key with the same arguments replays it without calling InstaMsg; with other arguments
or another block it is refused (IDEMPOTENCY_KEY_REUSED); while the first call still runs,
IDEMPOTENCY_KEY_IN_USE.
Only blocks with side effects keep answers: a read (GET) ignores the key.

A key's life: ``claim`` makes it ``running`` for a lease that covers the whole possible life
of the call (``Lifetimes``, from the same settings the call runs with). Then exactly one of:

- ``complete``: InstaMsg answered definitely (a success, or a refusal that ran nothing
  upstream beyond refusing); the answer is kept and replayed.
- ``release``: the call certainly sent nothing (refused before sending, a failed token
  fetch, an upstream 429, a connect error): the key is free for a retry.
- ``settle_unknown``: the call may have reached InstaMsg and its outcome is not known (a
  timeout after sending, the worker stopped mid-call, an answer that could not be kept).
  The key answers OUTCOME_UNKNOWN from then on; it is never run again.

A ``running`` claim whose lease passed (its process was killed) is not run again either:
the next claim finds it ``abandoned``, settles it as unknown in the same step, and every
later call with the key gets OUTCOME_UNKNOWN. The call itself never starts sending past its
``send_by`` moment (``SendWatch``), so a call still running when its lease ends has either
finished sending or never started.

Store faults raise ``IdempotencyUnavailable`` (503, nothing sent when the claim failed);
nothing is lost silently.

Every face runs a keyed call through these rules (the engine's ``run`` claims, the face's
rendered answer settles); the stores (connector/state/) only keep what they are told.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from http import HTTPStatus

from connector import metrics
from connector.engine.invocation import Invocation
from connector.errors import (
    ConnectorError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidFields,
    InvalidRequest,
    OutcomeUnknown,
    UpstreamTimeout,
)
from connector.state.fingerprint import fingerprint
from connector.state.store import Claim
from connector.upstream.outcomes import status_rule

MAX_KEY = 255
#: The largest answer a key keeps whole (bytes). Only blocks with side effects keep answers,
#: and theirs are small; a larger one keeps its status and a note (see ``bounded_answer``).
MAX_KEPT_BYTES = 64 * 1024
#: What the lease adds to the call's own worst case: the store write after the answer, and
#: scheduling. (A write later than that finds its claim settled as unknown, and its caller is
#: answered OUTCOME_UNKNOWN too: a small margin costs consistency of nothing.)
MARGIN = 5.0
#: What a token lock's life and wait add to a fetch's own time (``Lifetimes``).
LOCK_SLACK = 5.0


#: What an Idempotency-Key keeps once its call may have reached InstaMsg: an answer InstaMsg
#: gave definitely (a success, or a 4xx refusal). Anything else after sending (a timeout, a
#: broken connection, a 5xx, a bug) leaves the outcome unknown: the key answers
#: OUTCOME_UNKNOWN. A call that certainly sent nothing keeps nothing: its key is freed.
KEPT_CODES = frozenset({"SUCCESS", "API_ERROR"})
#: The arguments that say who calls InstaMsg, not what is asked of it.
CREDENTIALS = frozenset({"accessToken", "clientKey", "clientSecret"})


def outcome_unknown(replayed: bool = False) -> OutcomeUnknown:
    """The answer a key keeps when its call may have reached InstaMsg and how it ended is
    not known: the same for the first caller and every retry (``replayed``: a retry's)."""
    return OutcomeUnknown(
        "The call with this Idempotency-Key may or may not have reached InstaMsg: it was "
        "interrupted (a timeout after sending, InstaMsg failing with a 5xx after it may have "
        "acted, the connector stopping, or its answer could not be kept), so the connector "
        "cannot say whether it took effect and will not send it "
        "again under this key. Check in InstaMsg (getMessages, getFiles, getClients...) "
        "whether it happened; if it did not and you still want it, send it again with a NEW "
        "Idempotency-Key.",
        headers=[("Idempotent-Replayed", "true")] if replayed else (),
    )


@dataclass(frozen=True)
class Lifetimes:
    """How long each step of one block call can take at most, from the settings it runs
    with (seconds), and the lease that covers them all.

    - one upstream attempt: its connect and read timeouts;
    - one upstream send: its retries and waits end within ``deadline``, and the last
      attempt may start just before it (connector.upstream.retry.RetryPolicy);
    - a managed-token fetch: one upstream send, after waiting for another instance's fetch
      under the Redis token lock at most one attempt and a slack;
    - uploadFile's fileUrl fetch: its overall deadline and one connect (connector.upstream.fetch).

    A 401 on the block's call renews the token and sends once more: that second send still
    has to start by ``send_by``, or it is not sent at all (and the key is freed). The lease is
    therefore safe whatever the call does: no send starts later than ``send_by``, and every
    send ends within ``upstream``.
    """

    attempt: float
    upstream: float
    token: float
    file: float
    lease: float

    @classmethod
    def of(cls, settings) -> Lifetimes:
        attempt = settings.connect_timeout + settings.read_timeout
        upstream = settings.deadline + attempt
        token = upstream + attempt + LOCK_SLACK
        file = settings.deadline + settings.connect_timeout
        lease = file + token + upstream + MARGIN
        return cls(attempt, upstream, token, file, lease)

    @property
    def token_lock(self) -> float:
        """How long one instance's token fetch may hold the shared token lock: a whole fetch
        (it is repeatable, so its retries too) and the slack."""
        return self.upstream + LOCK_SLACK

    @property
    def token_wait(self) -> float:
        """How long another instance waits for that lock before fetching on its own (what
        ``token`` counts): one attempt and the slack."""
        return self.attempt + LOCK_SLACK

    @property
    def send_by(self) -> float:
        """Seconds after its claim past which a call no longer starts sending: a send that
        starts then ends before the lease does, with the margin to keep its answer."""
        return self.lease - MARGIN - self.upstream


class SendWatch:
    """Whether one keyed call may have reached InstaMsg, told by the upstream client
    (``connector.upstream.client.Upstream.send_once``) around each attempt of the block's own call:
    ``before`` just before bytes go out, ``after`` once the attempt ended, saying whether
    InstaMsg may have run it. An attempt that never ended (the worker stopped mid-call)
    counts as sent. ``before`` refuses to start past ``send_by`` (a monotonic time)."""

    __slots__ = ("send_by", "reached", "_open")

    def __init__(self, send_by: float | None = None):
        self.send_by = send_by
        self.reached = False
        self._open = False

    def before(self) -> None:
        if self.send_by is not None and time.monotonic() > self.send_by:
            raise UpstreamTimeout(
                "This call spent its time getting ready (a token, a file) and was not sent to "
                "InstaMsg: it is too late to send it under its Idempotency-Key's lease. Send "
                "it again with the same Idempotency-Key.",
                nothing_sent=True,
            )
        self._open = True

    def after(self, reached: bool) -> None:
        self._open = False
        if reached:
            self.reached = True

    @property
    def may_have_sent(self) -> bool:
        return self.reached or self._open


def request_digest(block: str, args: dict, context_key: str, rapid: bool, who: str = "") -> str:
    """A digest of what was asked: the block, its arguments as sent, and the answer's form;
    and ``who`` asked, where the key's scope alone does not say (an anonymous caller's
    InstaMsg identity: connector.engine.idempotency_keys.principal)."""

    def plain(value):
        if hasattr(value, "stream") and hasattr(value, "filename"):  # an uploaded file part
            stream = value.stream
            digest = hashlib.sha256()
            stream.seek(0)
            while chunk := stream.read(65536):
                digest.update(chunk)
            stream.seek(0)
            return {"file": value.filename, "sha256": digest.hexdigest()}
        return str(value)

    asked = [block, args, context_key, rapid, who] if who else [block, args, context_key, rapid]
    text = json.dumps(asked, sort_keys=True, default=plain, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def bounded_answer(status: int, headers: list, body: bytes) -> tuple[int, list, bytes]:
    """What a key keeps of an answer: all of it up to MAX_KEPT_BYTES; past that, its status
    and an envelope saying the call ran once and its answer was too large to keep."""
    if len(body) <= MAX_KEPT_BYTES:
        return status, headers, body
    note = {
        "callback": "success" if status < HTTPStatus.BAD_REQUEST else "error",
        "contextWrites": {},
        "warnings": [
            f"This call ran once; its answer ({len(body)} bytes) was larger than the "
            f"{MAX_KEPT_BYTES} bytes an Idempotency-Key keeps, so a replay answers only its "
            "status. Read the result with the matching get block."
        ],
    }
    kept = [[k, v] for k, v in headers if k.lower() not in ("content-length", "content-type")]
    kept.append(["Content-Type", "application/json"])
    return status, kept, json.dumps(note).encode("utf-8")


def check_form(key, argument: str | None = None) -> None:
    """A malformed key is refused on every block, the ones that ignore keys too: in the words
    of the face that took it, the HTTP header, or the ``argument`` of a tool's call."""
    if isinstance(key, str) and 1 <= len(key) <= MAX_KEY:
        return
    if argument is None:
        raise InvalidRequest(f"The Idempotency-Key header must be 1 to {MAX_KEY} characters.")
    why = f"Give {argument} as a string (1 to {MAX_KEY} characters), or leave it out."
    raise InvalidFields(f"{argument}: {why}", fields=[argument], errors={argument: [why]})


def claim(store, settings, inv: Invocation, blk, loaded, key) -> Claim | None:
    """Claim ``key`` for this call (None: run it), or the answer the key already holds.
    ``loaded`` are the call's validated arguments: what the key must match is what was asked,
    whatever its spelling (qos "2" from a form or 2 from JSON, a default given or
    left out). ``run`` has checked the key's form."""
    # A key belongs to the connector's caller as the face checked it (its API key, RapidAPI's
    # user), not to an access token: a flow that renewed its token before retrying must find
    # its key, so the credentials are no part of what the key must match. An anonymous
    # caller (no CONNECTOR_API_KEYS) shares one scope with every other, and is told apart
    # by the InstaMsg app it acts as: its kept answers go to that app's calls only.
    scope = fingerprint("caller", inv.identity or "")
    credentials = {n for n, f in blk.loader.fields.items() if (f.data_key or n) in CREDENTIALS}
    asked = {k: v for k, v in loaded.items() if k not in credentials}
    try:
        who = principal(store, inv, blk, loaded)
        digest = request_digest(blk.name, asked, inv.context_key, inv.rapid, who)
        found = store.claim(scope, key, blk.name, digest)
    except ConnectorError:
        metrics.IDEMPOTENCY.labels("unavailable").inc()
        raise
    if found.kind != "new":
        metrics.IDEMPOTENCY.labels("replayed" if found.kind == "replay" else found.kind).inc()
    if found.kind == "reused":
        other = (
            "other arguments, another block or route, or another InstaMsg app"
            if who
            else "other arguments, another block or another route"
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
    # while it runs and a retry could find it abandoned (``Lifetimes``).
    inv.watch = SendWatch(time.monotonic() + Lifetimes.of(settings).send_by)
    return None


def principal(store, inv: Invocation, blk, loaded) -> str:
    """Who an anonymous caller's keyed call acts as in InstaMsg ("" for a caller the face
    identified: its scope says who it is), from its validated arguments (``loaded``: a
    credential given as a JSON number is its text there, as InstaMsg receives it). A kept
    answer may only go to a caller who could have made the call itself:

    - with clientKey and clientSecret, the app they name (both: the key alone is no proof);
    - with an accessToken the connector handed out (getAccessToken, any face), the app it
      was issued to, so a retry with a renewed token of the same app still replays;
    - with any other token, that token alone: a token from elsewhere cannot be tied to an
      app, and a retry with another one is refused, never answered with another's result.
    """
    if inv.identity is not None:
        return ""
    token = loaded.get("access_token")
    if token is not None and blk.auth != "basic":  # a basic block's token is what it acts on
        name = token_name(str(token))
        return store.owner_of(name) or "token:" + name
    client_key, client_secret = loaded.get("client_key"), loaded.get("client_secret")
    if client_key is not None and client_secret is not None:
        return app_name(str(client_key), str(client_secret))
    # Every keyed block takes credentials (validation saw to it): never a shared "nobody".
    raise AssertionError("a keyed call without credentials reached its key's claim")


def token_name(token: str) -> str:
    return fingerprint("access token", token)


def app_name(client_key: str, client_secret: str) -> str:
    return "app:" + fingerprint("app", client_key, client_secret)


#: How long a handed-out token stays tied to its app when InstaMsg does not say (seconds).
TOKEN_LIFE = 3600.0


def tie_token(store, inv: Invocation, loaded, result) -> None:
    """getAccessToken answered an anonymous caller: remember which app the token is for,
    so that the app's keyed calls with it (or with a later token) share their keys."""
    if inv.identity is not None or not isinstance(result, dict):
        return
    token, life = result.get("access_token"), result.get("expires_in")
    client_key, client_secret = loaded.get("client_key"), loaded.get("client_secret")
    if not (isinstance(token, str) and token and client_key is not None):
        return
    if client_secret is None:
        return
    client_key, client_secret = str(client_key), str(client_secret)
    ttl = float(life) if isinstance(life, int | float) and life > 0 else TOKEN_LIFE
    store.tie(token_name(token), app_name(client_key, client_secret), ttl)


def untie_token(store, inv: Invocation, loaded) -> None:
    """invalidateAccessToken ended a token: it can make no call any more, so it no longer
    stands for its app (a retry with it is refused, never replayed)."""
    token = loaded.get("access_token")
    if inv.identity is None and token is not None:
        store.untie(token_name(str(token)))


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
        definite = (
            inv.code in KEPT_CODES
            and inv.upstream_status is not None
            and status_rule(inv.upstream_status).definite
        )
        if definite and not streamed:
            if store.complete(scope, key, owner, *bounded_answer(status, headers, body)):
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
