"""Hooks: made, listed, shown and removed (for the HTTP face and the CLI alike), and a
sender's delivery run through the engine once.

A hook is a JSON record: ``id``, ``block``, fixed ``args``, ``map`` (argument -> JMESPath),
``verify`` (``scheme``, ``secret`` and the scheme's options), ``delivery_id`` (a JMESPath, or
None), ``respond`` and ``created``. Its secret (and a token scheme's URL token, which is its
secret) is answered once, when the hook is made; every later view leaves it out, and shows
the secret arguments of ``args`` as ``[redacted]``.

A delivery runs as one more face of the engine (``Engine.answer``): its caller is the hook
(``hook:<id>``, so its Idempotency-Keys are its own, shared with no other hook or API caller),
and its delivery id is the call's Idempotency-Key. The same delivery sent again is answered
what the first was, and never runs twice (connector.engine.idempotency_keys).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from http import HTTPStatus

from connector import jsonx, metrics
from connector.engine import Answer, Engine, Invocation
from connector.engine.arguments import held_credentials, with_app_credentials
from connector.engine.core import JSON_TYPE
from connector.engine.idempotency_keys import MAX_KEY, Lifetimes
from connector.engine.redaction import REDACTED, scrub
from connector.errors import (
    ConnectorError,
    IdempotencyKeyReused,
    InvalidFields,
    InvalidRequest,
    OutcomeUnknown,
)
from connector.hooks import mapping
from connector.hooks.errors import HookNotFound
from connector.hooks.schemes import MAX_SECRET, MIN_SECRET, SCHEMES, token_matches
from connector.state.stores import open_hook_store

#: Where a sender posts a hook's deliveries: ``/webhooks/<id>``, and ``/webhooks/<id>/<token>``
#: for the token scheme. Open without an API key (the signature or the token is the proof).
SENDER_PREFIX = "/webhooks/"
#: A hook's id: 20 hex characters (80 random bits; the id is no secret).
HOOK_ID = re.compile(r"h[0-9a-f]{20}")
#: The most hooks one connector keeps.
MAX_HOOKS = 1000
#: Deliveries kept per hook: at most this many, for at most this long (seconds).
KEEP_DELIVERIES = 200
DELIVERY_TTL = 7 * 24 * 3600
#: The ways a hook answers its sender: the block's answer, or 202 and a consumer runs it.
RESPOND = ("result", "queued")
#: A delivery's record's final statuses (the others: queued, running, retrying).
FINAL = frozenset({"done", "failed", "outcome_unknown"})
#: What a hook's creation body may hold.
FIELDS = ("block", "args", "map", "verify", "delivery_id", "respond")


def refusal(name: str, why: str) -> InvalidFields:
    return InvalidFields(f"{name}: {why}.", fields=[name], errors={name: [why]})


def final_status(answer: Answer, inv: Invocation) -> str:
    """What a run's answer makes of its delivery: ``done``; ``outcome_unknown`` (it may have
    reached InstaMsg: never run again); ``retry`` when the engine says the call sent nothing
    and may be sent again (its envelope's ``retryable``); else ``failed`` (a refusal)."""
    if answer.status < HTTPStatus.BAD_REQUEST:
        return "done"
    if inv.code == OutcomeUnknown.code:
        return "outcome_unknown"
    envelope = answer.envelope or {}
    error = envelope.get("contextWrites", {}).get(inv.context_key) or {}
    return "retry" if error.get("retryable") else "failed"


def public_path(path: str, routed: bool = True) -> str:
    """A request path as a log line may show it: a sender's URL keeps its hook id, and what
    follows it (a token scheme's token) is never written. A path no route took (``routed``
    False) keeps only its first two parts: a sender that got its URL's prefix wrong
    (``/WEBHOOKS/...``, ``/hooks/<id>/<token>``) still sent its token in it."""
    if not routed:
        parts = path.split("/")
        return "/".join(parts[:3]) + ("/[redacted]" if len(parts) > 3 else "")
    if not path.startswith(SENDER_PREFIX):
        return path
    hook_id, slash, _ = path[len(SENDER_PREFIX) :].partition("/")
    return SENDER_PREFIX + hook_id + ("/[redacted]" if slash else "")


def sender_url(hook: Mapping, with_token: bool) -> str:
    url = SENDER_PREFIX + hook["id"]
    if hook["verify"]["scheme"] == "token":
        url += "/" + (hook["verify"]["secret"] if with_token else "<token>")
    return url


class Hooks:
    """Every hook of this connector, in the state store the engine's settings name (opened on
    first use, as the engine's own stores are)."""

    def __init__(self, engine: Engine, store=None, clock=time.time, queue=None):
        self.engine = engine
        self._store = store
        self._queue = queue
        self.clock = clock
        #: other faces' tasks on this same queue and consumer: each is called with the Huey
        #: instance once it is made (connector/events registers its deliveries; app.py wires it)
        self.more_tasks: list = []

    @property
    def store(self):
        if self._store is None:
            self._store = open_hook_store(self.engine.settings, DELIVERY_TTL, KEEP_DELIVERIES)
        return self._store

    # -- made, shown, removed -------------------------------------------------------------

    def create(self, body) -> dict:
        """Make a hook from its creation body; the answer holds its secret, this once."""
        if not isinstance(body, dict):
            raise InvalidRequest("A hook is made from a JSON object (block, args, map, verify).")
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            raise refusal(unknown[0], "not a field of a hook (they are: " + ", ".join(FIELDS) + ")")
        if len(self.store.all()) >= MAX_HOOKS:
            raise InvalidRequest(
                f"This connector keeps at most {MAX_HOOKS} hooks. Remove one first "
                "(DELETE /hooks/<id>).",
                http_status=409,
            )
        hook = self.checked(body)
        hook["id"] = "h" + secrets.token_hex(10)
        hook["created"] = self.clock()
        self.store.put(hook["id"], hook)
        shown = self.view(hook)
        shown["url"] = sender_url(hook, with_token=True)
        shown["secret"] = hook["verify"]["secret"]
        return shown

    def checked(self, body: dict) -> dict:
        """The hook a creation body describes, every part checked (INVALID_FIELDS naming the
        part otherwise); its expressions compile, or the hook is refused."""
        inv = Invocation(face="hook")
        name = body.get("block")
        if not isinstance(name, str) or not name:
            raise refusal("block", "name the block the hook runs (GET /blocks lists them)")
        blk = self.engine.find(inv, name)
        args, expressions = body.get("args") or {}, body.get("map") or {}
        for part, value in (("args", args), ("map", expressions)):
            if not isinstance(value, dict):
                raise refusal(part, "give an object of the block's arguments")
            strangers = sorted(k for k in value if k not in blk.arg_names)
            if strangers:
                raise refusal(f"{part}.{strangers[0]}", f"{blk.name} takes no such argument")
        if len(expressions) > mapping.MAX_MAP:
            raise refusal("map", f"a hook maps at most {mapping.MAX_MAP} arguments")
        for arg, text in expressions.items():
            mapping.compile_expression(f"map.{arg}", text)
        verify = self.checked_verify(body.get("verify"))
        delivery = body.get("delivery_id", SCHEMES[verify["scheme"]].delivery_id)
        if delivery is not None:
            mapping.compile_expression("delivery_id", delivery)
        respond = body.get("respond", "result")
        if respond not in RESPOND:
            raise refusal("respond", "result (the block's answer) or queued (202, run later)")
        secret = sorted(set(expressions) & set(blk.secret_keys))
        if respond == "queued" and secret:
            # A queued delivery runs from its record, whose secrets are scrubbed.
            why = "a queued hook takes its secret arguments from args, not from the payload"
            raise refusal(f"map.{secret[0]}", why)
        return {
            "block": blk.name,
            "args": args,
            "map": expressions,
            "verify": verify,
            "delivery_id": delivery,
            "respond": respond,
        }

    @staticmethod
    def checked_verify(given) -> dict:
        if not isinstance(given, dict) or given.get("scheme") not in SCHEMES:
            why = "give {scheme, secret?}, the scheme one of " + ", ".join(SCHEMES)
            raise refusal("verify.scheme", why)
        scheme = SCHEMES[given["scheme"]]
        allowed = {"scheme", "secret", *scheme.options}
        strangers = sorted(set(given) - allowed)
        if strangers:
            raise refusal(
                f"verify.{strangers[0]}", f"the {scheme.name} scheme takes no such option"
            )
        verify = {"scheme": scheme.name}
        for option, (choices, required, default) in scheme.options.items():
            value = given.get(option, default)
            if required and not value:
                raise refusal(f"verify.{option}", f"the {scheme.name} scheme needs it")
            if not isinstance(value, str) or len(value) > MAX_SECRET:
                raise refusal(f"verify.{option}", f"give text of at most {MAX_SECRET} characters")
            if choices is not None and value not in choices:
                raise refusal(f"verify.{option}", "one of " + ", ".join(choices))
            verify[option] = value
        secret = given.get("secret")
        if secret is None:
            secret = scheme.make_secret()
        else:
            why = (
                f"give text of {MIN_SECRET} to {MAX_SECRET} characters"
                if not isinstance(secret, str) or len(secret) > MAX_SECRET
                else scheme.refuse_secret(secret)
                or (
                    len(secret) < MIN_SECRET
                    and f"give at least {MIN_SECRET} characters"
                    " (a short secret can be guessed from one signed delivery)"
                )
            )
            if why:
                raise refusal("verify.secret", why)
        verify["secret"] = secret
        return verify

    def redacted(self, hook: Mapping, args: Mapping) -> dict:
        """``args`` with the value of each secret argument of the hook's block redacted (every
        value, should the block no longer exist: nothing then says which are secret)."""
        try:
            secret = self.engine.registry.get(hook["block"]).secret_keys
        except ConnectorError:
            return dict.fromkeys(args, REDACTED)
        return {k: REDACTED if k in secret else v for k, v in args.items()}

    def view(self, hook: Mapping) -> dict:
        """A hook as every later answer shows it: no secret, secret arguments redacted."""
        args = self.redacted(hook, hook["args"])
        verify = {k: v for k, v in hook["verify"].items() if k != "secret"}
        return {
            "id": hook["id"],
            "url": sender_url(hook, with_token=False),
            "block": hook["block"],
            "args": args,
            "map": hook["map"],
            "verify": verify,
            "delivery_id": hook["delivery_id"],
            "respond": hook["respond"],
            "created": hook["created"],
        }

    def get(self, hook_id: str) -> dict:
        hook = self.store.get(hook_id) if HOOK_ID.fullmatch(hook_id or "") else None
        if hook is None:
            raise HookNotFound.at_url()
        return hook

    def all(self) -> list[dict]:
        return [self.view(hook) for hook in self.store.all()]

    def remove(self, hook_id: str) -> None:
        self.get(hook_id)
        self.store.delete(hook_id)

    # -- a delivery -----------------------------------------------------------------------

    def receive(
        self,
        inv: Invocation,
        hook_id: str,
        token: str | None,
        raw: bytes,
        headers: Mapping[str, str],
        query: Mapping,
        mimetype: str,
    ) -> Answer:
        """Take one delivery: find the hook (an unknown id and a wrong token answer alike),
        check the signature on the raw body, map, then run the block under the delivery id
        (``respond: result``) or record it and answer 202 (``queued``). Raises a
        ConnectorError for a refusal before the mapping (404, 401, 400); from the mapping
        on, every outcome is answered and recorded."""
        inv.face = "hook"
        hook = self.store.get(hook_id) if HOOK_ID.fullmatch(hook_id) else None
        if hook is None or not token_matches(hook, token):
            raise HookNotFound.at_url()
        metrics.hook_delivery(hook_id, "received")
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            SCHEMES[hook["verify"]["scheme"]].check(hook["verify"], raw, lowered, self.clock())
        except ConnectorError:
            metrics.hook_delivery(hook_id, "refused")
            raise
        metrics.hook_delivery(hook_id, "verified")
        inv.identity = "hook:" + hook_id
        received = self.clock()
        delivery, args = None, {}
        try:
            doc = mapping.document(mapping.read_body(raw, mimetype), lowered, query)
            delivery = self.delivery_key(hook, doc)
            args = {**hook["args"], **mapping.mapped_args(hook["map"], doc)}
        except ConnectorError as error:
            answer = Engine.failed(inv, error)
        else:
            if hook["respond"] == "queued":
                return self.queue_delivery(hook, inv, delivery, received, args)
            answer = self.run(inv, hook, args, delivery)
        self.settled(hook, inv, delivery, received, args, answer)
        return answer

    def run(self, inv: Invocation, hook: Mapping, args: dict, key: str | None) -> Answer:
        """The hook's block, run once under ``key``: a call that brings no credentials of its
        own runs with the app's the connector holds (INSTAMSG_CLIENT_KEY and _SECRET)."""
        held = held_credentials(self.engine.settings)
        args = with_app_credentials(args, held)
        return self.engine.answer(inv, hook["block"], args, key=key, can_stream=False)

    def settled(self, hook, inv, delivery, received, args, answer, record_id=None) -> str:
        """Record a delivery's final answer and count it; its status word (a failure that
        could be tried again is final here: no more tries are coming)."""
        status = final_status(answer, inv)
        status = "failed" if status == "retry" else status
        metrics.hook_delivery(hook["id"], "succeeded" if status == "done" else "failed")
        if inv.code == IdempotencyKeyReused.code and delivery is not None:
            # Another body under a delivery id already run (a sender's bug, or a replay
            # with a forged id): refused, and the record of what that id did stays as it is.
            return status
        self.record(hook, inv, delivery, received, args, status, answer, record_id)
        return status

    def delivery_key(self, hook: Mapping, doc: dict) -> str | None:
        """The delivery id as the call's Idempotency-Key (None: the hook names none). An id
        longer than a key may be is kept by its SHA-256."""
        if hook["delivery_id"] is None:
            return None
        value = mapping.search("delivery_id", hook["delivery_id"], doc)
        text = value if isinstance(value, str) else str(value)
        if not text:
            raise refusal("delivery_id", f"{hook['delivery_id']!r} is empty in this delivery")
        if len(text) > MAX_KEY:
            text = "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        return text

    def record(
        self, hook, inv, delivery, received, args, status, answer=None, record_id=None, strict=False
    ) -> dict:
        """Keep what happened to a delivery: the first time it came, how often it was tried,
        its arguments with every secret scrubbed, its status (``queued``, ``running``,
        ``retrying``, or final: ``done``, ``failed``, ``outcome_unknown``), and the final
        answer's HTTP status and envelope."""
        known = record_id or delivery  # else the record is new: named by the request's id
        record_id = known or inv.request_id
        before = None
        # The log of deliveries is kept as far as the store allows: the call was answered.
        with contextlib.suppress(ConnectorError):
            before = self.store.delivery(hook["id"], record_id) if known else None
        shown = self.redacted(hook, args)
        tried = answer is not None and status != "queued"
        entry = {
            "id": record_id,
            "delivery_id": delivery,
            "received": before["received"] if before else received,
            "last": received,
            "attempts": (before["attempts"] if before else 0) + (1 if tried else 0),
            "request_id": inv.request_id,
            "args": scrub(shown, inv.secrets) if inv.secrets else shown,
            "status": status,
            "http_status": answer.status if answer is not None else None,
            "code": inv.code,
            "replayed": answer.replayed if answer is not None else False,
            "envelope": answer.envelope if answer is not None else None,
        }
        if strict:  # a queued delivery's record is its only durable copy: 503 when not kept
            self.store.record_delivery(hook["id"], record_id, entry)
        else:
            with contextlib.suppress(ConnectorError):
                self.store.record_delivery(hook["id"], record_id, entry)
        return entry

    def restored(self, hook: Mapping, found: Mapping) -> dict:
        """A record's arguments as they ran: a secret it shows redacted comes back from the
        hook's fixed arguments; one that came from the payload cannot, and is refused."""
        args = {k: hook["args"].get(k, v) if v == REDACTED else v for k, v in found["args"].items()}
        lost = sorted(k for k, v in args.items() if v == REDACTED)
        if lost:
            raise refusal(lost[0], "a secret taken from the payload is not kept: send it anew")
        return args

    # -- respond: queued ------------------------------------------------------------------

    @property
    def queue(self):
        if self._queue is None:
            from connector.hooks.queue import Queue  # Huey loads where queued work is done

            self._queue = Queue(self, self.engine.settings)
            for register in self.more_tasks:
                register(self._queue.huey)
        return self._queue

    def queue_delivery(self, hook, inv, delivery, received, args) -> Answer:
        """Record a delivery durably and answer 202; a consumer runs it. A delivery that is
        already recorded (the sender's retry) is answered its record's status, not queued
        again. The record is written first: a job that cannot be queued is queued again by
        the next sweep."""
        record_id = delivery or inv.request_id
        found = self.store.delivery(hook["id"], record_id)
        if found is None:
            found = self.record(
                hook, inv, delivery, received, args, "queued", None, record_id, strict=True
            )
            metrics.hook_delivery(hook["id"], "queued")
            with contextlib.suppress(Exception):  # noqa: BLE001  (the sweep queues it again)
                self.queue.enqueue(hook["id"], record_id, delivery or "record:" + record_id)
        inv.code = "QUEUED"
        body = {"delivery": record_id, "status": found["status"]}
        return Answer(202, [JSON_TYPE], body, jsonx.dumps(body))

    def run_queued(self, hook_id: str, record_id: str, key: str) -> str | float:
        """Run a recorded delivery (a consumer's job): its status once run, or, when it sent
        nothing and may be tried again (HOOK_RETRIES not spent), the seconds to wait first.
        A record already final, or gone with its hook, is left as it is."""
        hook = self.store.get(hook_id)
        found = self.store.delivery(hook_id, record_id) if hook else None
        if found is None or found["status"] in FINAL:
            return found["status"] if found else "gone"
        inv = Invocation(face="hook")
        inv.identity = "hook:" + hook_id
        started, delivery = self.clock(), found["delivery_id"]
        try:
            args = self.restored(hook, found)
        except ConnectorError as error:
            return self.settled(
                hook, inv, delivery, started, {}, Engine.failed(inv, error), record_id
            )
        self.record(hook, inv, delivery, started, args, "running", None, record_id)
        answer = self.run(inv, hook, args, key)
        tries = found["attempts"] + 1
        if final_status(answer, inv) == "retry" and tries <= self.engine.settings.hook_retries:
            metrics.hook_delivery(hook_id, "deferred")
            self.record(hook, inv, delivery, started, args, "retrying", answer, record_id)
            return self.wait_before(tries, answer)
        return self.settled(hook, inv, delivery, started, args, answer, record_id)

    def wait_before(self, tries: int, answer: Answer) -> float:
        """How long a delivery that sent nothing waits before its next try (seconds): twice as
        long after each try, from HOOK_RETRY_BASE, and never less than the answer's
        Retry-After (InstaMsg's own, or the key store's)."""
        from connector.hooks.queue import BACKOFF

        wait = self.engine.settings.hook_retry_base * BACKOFF ** (tries - 1)
        said = next((v for k, v in answer.headers if k.lower() == "retry-after"), "")
        return max(wait, float(said)) if said.isdigit() else wait

    def sweep(self, stale_only: bool) -> int:
        """Queue again every record of a queued hook that is not final (``stale_only``: only
        those untouched for longer than a call's lease and SWEEP_SLACK): what a consumer
        killed mid-run, or a queue that lost a job, left behind. Safe to repeat: a record runs
        under its key. Answers how many were queued."""
        from connector.hooks.queue import SWEEP_SLACK

        lease = Lifetimes.of(self.engine.settings).lease
        horizon = self.clock() - (lease + SWEEP_SLACK if stale_only else 0)
        count = 0
        for hook in self.store.all():
            if hook["respond"] != "queued":
                continue
            for found in self.store.deliveries(hook["id"], KEEP_DELIVERIES):
                if found["status"] in FINAL or found["last"] > horizon:
                    continue
                key = found["delivery_id"] or "record:" + found["id"]
                self.queue.enqueue(hook["id"], found["id"], key)
                count += 1
        return count

    def redeliver(self, inv: Invocation, hook_id: str, record_id: str, key: str | None) -> Answer:
        """Run a recorded delivery's arguments again, for the API caller who asks (``inv``
        identified by its API key): a new block call, under that caller's Idempotency-Key
        ``key`` when given, never the delivery's own (which still answers the sender's
        retries as it did). A secret the record redacted is taken from the hook's fixed
        arguments; one that came from the payload cannot be, and is refused by name."""
        hook = self.get(hook_id)
        found = self.store.delivery(hook_id, record_id)
        if found is None:
            raise InvalidRequest(
                "This hook has no delivery record of that id (GET /hooks/<id>/deliveries "
                f"lists them; records are kept {DELIVERY_TTL // 86400} days).",
                http_status=404,
            )
        args = self.restored(hook, found)
        received = self.clock()
        answer = self.run(inv, hook, args, key)
        metrics.hook_delivery(hook_id, "redelivered")
        status = final_status(answer, inv)
        status = "failed" if status == "retry" else status
        self.record(hook, inv, found["delivery_id"], received, args, status, answer, record_id)
        return answer

    def deliveries(self, hook_id: str, limit: int = KEEP_DELIVERIES) -> list[dict]:
        self.get(hook_id)
        return self.store.deliveries(hook_id, max(1, min(limit, KEEP_DELIVERIES)))

    def test(self, hook_id: str, sample) -> dict:
        """Map a sample delivery (``{"body", "headers", "query"}``) as the hook would, and show
        the arguments and delivery id; nothing is verified, run or recorded."""
        hook = self.get(hook_id)
        if not isinstance(sample, dict):
            raise InvalidRequest('A sample is a JSON object: {"body": ..., "headers": {...}}.')
        headers, query = sample.get("headers") or {}, sample.get("query") or {}
        if not isinstance(headers, dict) or not isinstance(query, dict):
            raise InvalidRequest("A sample's headers and query are objects.")
        doc = mapping.document(sample.get("body"), {str(k): v for k, v in headers.items()}, query)
        mapped = mapping.mapped_args(hook["map"], doc)
        shown = {"args": self.redacted(hook, {**hook["args"], **mapped}), "mapped": sorted(mapped)}
        try:  # a sample often lacks the sender's headers: say so, the mapping still shows
            shown["delivery_id"] = self.delivery_key(hook, doc)
        except ConnectorError as error:
            shown["delivery_id"], shown["delivery_id_problem"] = None, error.message
        return shown
