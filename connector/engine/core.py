"""The engine: runs one block, from the caller's arguments to its result or a ConnectorError.

No web framework here. Each face (the Flask blueprint, the CLI, the MCP server) turns what
it received into arguments and an ``Invocation``, calls ``Engine.answer`` (or
``Engine.call``) and renders the ``Answer``: the final answer of the call, its Idempotency-
Key already settled. Validation, managed tokens, retries, Idempotency-Keys and the scrubbing
of secrets happen here once, for every face.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from connector import jsonx, logs
from connector.engine import idempotency_keys as keys
from connector.engine.arguments import ignored_warnings, take_context_key, take_stream_switch
from connector.engine.invocation import Invocation
from connector.engine.redaction import (
    redaction,
    refuse_oversized_secrets,
    scrub,
    secret_values,
)
from connector.engine.registry import REGISTRY, Block, Context
from connector.engine.tokens import TokenManager
from connector.errors import ConnectorError, InternalError, InvalidFields, Unauthorized
from connector.state.store import Claim
from connector.state.stores import open_idempotency_store, open_token_cache
from connector.upstream.outcomes import cut_to_limits


def caller_identity(api_key: str) -> str:
    """The name a connector API key's caller goes by in the stores (never the key itself)."""
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]


#: The header every envelope goes with.
JSON_TYPE = ("Content-Type", "application/json")


@dataclass(slots=True)
class Answer:
    """A call's final answer, as every face renders it: the HTTP status and headers the HTTP
    face sends (the CLI and the MCP server read the envelope), the envelope as JSON (what an
    Idempotency-Key keeps and replays), or downloadFile's open upstream answer to pass on."""

    status: int
    headers: list
    _envelope: dict | None = None
    body: bytes | None = None
    reply: Any = None
    filename: str | None = None
    #: the answer an Idempotency-Key already held
    replayed: bool = False

    @property
    def envelope(self) -> dict | None:
        """The envelope (a replay's, read from its kept JSON); None for raw bytes."""
        if self._envelope is None and self.body is not None:
            self._envelope = jsonx.loads(self.body)
        return self._envelope


@dataclass(slots=True)
class Outcome:
    """What a block run answered: its result; or, when the caller asked for downloadFile's
    raw bytes, InstaMsg's open answer to pass through; or the answer an Idempotency-Key
    already holds."""

    result: Any = None
    reply: Any = None
    filename: str | None = None
    replay: Claim | None = None


class Engine:
    """What every call shares in one process: settings, the upstream client, the managed
    token cache and the idempotency store. With REDIS_URL both live in Redis, shared by
    every instance; without, in a SQLite file and this process. Nothing connects before
    the first call that needs it (gunicorn forks workers after the app is built)."""

    def __init__(self, settings, upstream, registry=REGISTRY, sandbox_data=None):
        self.settings = settings
        #: in sandbox mode, the sandbox's data file
        self.sandbox_data = sandbox_data
        self.upstream = upstream
        self.registry = registry
        lifetimes = keys.Lifetimes.of(settings)
        shared = open_token_cache(settings, lifetimes.token_lock, lifetimes.token_wait)
        self.tokens = TokenManager(upstream, registry, shared=shared)
        self._lease = lifetimes.lease
        self._idempotency = None

    @property
    def idempotency(self):
        if self._idempotency is None:
            self._idempotency = open_idempotency_store(self.settings, self._lease)
        return self._idempotency

    def announce(self) -> None:
        """Log which InstaMsg this engine calls: what a face that runs blocks in this process
        says once as it starts (the HTTP server, the CLI's and the MCP server's in-process
        runs; not a face that runs them elsewhere)."""
        if self.settings.sandbox:
            logs.event(
                "SANDBOX MODE: every block is answered by the embedded InstaMsg sandbox; no "
                "request leaves this process. Set INSTAMSG_SANDBOX=0 to call InstaMsg.",
                mode="sandbox",
                data=str(self.sandbox_data),
            )
        else:
            logs.event("live mode", mode="live", upstream=self.settings.api_url)

    def readiness(self) -> list[str]:
        """What keeps this instance from serving: an empty list when its stores answer."""
        try:
            store = self.idempotency
        except Exception as exc:  # noqa: BLE001  (an unusable data dir, say: report it)
            kind = getattr(exc, "fault", None) or type(exc).__name__
            return [f"the idempotency store cannot be opened ({kind})"]
        failed = store.check()
        return [failed] if failed else []

    # -- who may call ---------------------------------------------------------------------

    @property
    def keyless(self) -> bool:
        """No CONNECTOR_API_KEYS: anyone who reaches a face may run blocks."""
        return not self.settings.api_keys

    def identify(self, inv: Invocation, api_key: str | None) -> bool:
        """Whether ``api_key`` is one of CONNECTOR_API_KEYS; if so, ``inv`` is that key's
        caller from now on (its Idempotency-Keys and rate limits), on every face alike."""
        if not self.admits(api_key):
            return False
        inv.identity = caller_identity(api_key)
        return True

    def admits(self, api_key: str | None) -> bool:
        """``api_key`` is one of CONNECTOR_API_KEYS (compared in constant time)."""
        given = (api_key or "").encode()
        return bool(given) and any(
            hmac.compare_digest(given, key.encode()) for key in self.settings.api_keys
        )

    # -- running a block ------------------------------------------------------------------

    def find(self, inv: Invocation, name: str) -> Block:
        """The block called ``name`` (or UNKNOWN_BLOCK), noted in ``inv`` from then on: a
        face finds it before it reads the arguments, so that even a call refused for its body
        is logged and counted under its block."""
        blk = self.registry.get(name, inv.listed_by)
        inv.block = blk.name
        return blk

    def run(
        self,
        inv: Invocation,
        block: str | Block,
        args: dict,
        *,
        key: str | None = None,
        stream=False,
        can_stream=True,
        caller_gone=None,
    ) -> Outcome:
        """Run ``block`` (a name, or what ``find`` found) with the caller's ``args`` (a dict
        this call may change).

        ``key`` is an Idempotency-Key (a block that is not ``keyed`` ignores it: a read, or
        getAccessToken, whose kept answer would be a token that expires);
        ``stream`` asks for downloadFile's raw bytes (the ``stream`` argument says the same),
        which a face that cannot pass bytes on refuses with ``can_stream=False`` before
        anything is sent; ``caller_gone``, where the face can tell, says whether its caller
        hung up (a file fetch stops then). Raises a ConnectorError for anything that is not
        a success; ``inv`` says what happened either way."""
        blk = block if isinstance(block, Block) else self.find(inv, block)
        refuse_oversized_secrets(blk, args)  # before any step reads one
        inv.secrets = secret_values(blk, args)
        inv.context_key = take_context_key(args)
        streamed = blk.streamable and take_stream_switch(args, stream)
        if streamed and not can_stream:
            why = "The raw bytes are served over HTTP only; leave stream out to get them base64."
            raise InvalidFields("stream: " + why, fields=["stream"], errors={"stream": [why]})
        inv.warnings = ignored_warnings(inv, blk, args)
        loaded = blk.load(args)
        if key is not None:
            keys.check_form(key, inv.key_argument)
        if key is not None and blk.keyed:
            replay = keys.claim(self.idempotency, self.settings, inv, blk, loaded, key)
            if replay is not None:
                return Outcome(replay=replay)
        ctx = Context(
            upstream=self.upstream,
            settings=self.settings,
            request_id=inv.request_id,
            caller_gone=caller_gone,
        )
        part = blk.file_part(loaded, ctx) if blk.file_part is not None else None
        # One deadline for the token's fetch, the call, a renewal and the reading of an answer
        # read after its exchange (downloadFile's base64); a streamed one flows at its reader's.
        with self.upstream.within():
            reply = self.tokens.send(blk, loaded, inv.request_id, inv.secrets, part, inv.watch)
            inv.upstream_status = reply.status_code
            if streamed:
                inv.code = "SUCCESS"
                return Outcome(reply=reply, filename=loaded["filename"])
            result = blk.result(reply, loaded, ctx)
        inv.code = "SUCCESS"
        if blk.grants_token and inv.identity is None:
            # A store that fails is logged there, and costs only this: a retry with the
            # token is refused instead of replayed. The token is answered either way.
            with contextlib.suppress(ConnectorError):
                keys.tie_token(self.idempotency, inv, loaded, result)
        if blk.revokes_token and inv.identity is None:
            with contextlib.suppress(ConnectorError):
                keys.untie_token(self.idempotency, inv, loaded)
        return Outcome(result=result)

    def answer(self, inv: Invocation, block: str | Block, args: dict, **options) -> Answer:
        """Run a call to its final answer, the one every face renders: a success, an error
        (a bug's included, logged by type and place, never its text), the answer its
        Idempotency-Key already held, or OUTCOME_UNKNOWN when its key could not be settled.
        The key is settled here, with this very answer, before any face sees it; a call
        stopped midway (the worker stopping) leaves its key to ``keys.abandon``. The
        arguments, and the keyword ``options`` (key, stream, can_stream, caller_gone), are
        ``run``'s."""
        try:
            try:
                outcome = self.run(inv, block, args, **options)
            except ConnectorError as error:
                answer = self.failed(inv, error)
            except Exception as exc:  # noqa: BLE001  (a bug: answered, logged without its text)
                logs.LOGGER.error(
                    "unexpected error",
                    exc_info=exc,
                    extra={"fields": {"request_id": inv.request_id, "block": inv.block}},
                )
                answer = self.failed(inv, InternalError.bug())
            else:
                answer = self.succeeded(inv, outcome)
            if inv.claim is not None and not keys.keep(
                self.idempotency,
                inv,
                answer.status,
                answer.headers,
                answer.body or b"",
                answer.reply is not None,
            ):
                answer = self.failed(inv, keys.outcome_unknown())
            return answer
        except BaseException:
            if inv.claim is not None:  # stopped before its answer was settled
                keys.abandon(self.idempotency, inv)
            raise

    def call(
        self,
        inv: Invocation,
        name: str,
        args: dict,
        *,
        api_key: str | None = None,
        key: str | None = None,
        stream=False,
        can_stream=True,
    ) -> Answer:
        """``answer`` for a face that runs blocks in this process and has no HTTP request of
        its own (the CLI, the MCP server): the API-key rule first, and afterwards the log
        line an HTTP call's access line would be."""
        if not self.keyless and not self.identify(inv, api_key):
            answer = self.failed(inv, Unauthorized.api_key_needed(given_as=inv.api_key_argument))
        else:
            answer = self.answer(inv, name, args, key=key, stream=stream, can_stream=can_stream)
        logs.event(
            "block call",
            request_id=inv.request_id,
            face=inv.face,
            block=inv.block,
            code=inv.code,
            upstream_status=inv.upstream_status,
            ms=round((time.perf_counter() - inv.started) * 1000, 1),
            ignored_args=inv.ignored or None,
        )
        return answer

    # -- what every face answers ----------------------------------------------------------

    def succeeded(self, inv: Invocation, outcome: Outcome) -> Answer:
        """The answer of a run that did not fail: its result, its raw bytes, or a replay."""
        if outcome.replay is not None:
            kept = outcome.replay
            headers = [(name, value) for name, value in kept.headers]
            headers.append(("Idempotent-Replayed", "true"))
            return Answer(kept.status, headers, body=kept.body, replayed=True)
        if outcome.reply is not None:
            return Answer(200, [], reply=outcome.reply, filename=outcome.filename)
        envelope = self.envelope(inv, "success", outcome.result)
        return Answer(200, [JSON_TYPE], envelope, jsonx.dumps(envelope))

    @classmethod
    def failed(cls, inv: Invocation, error: ConnectorError) -> Answer:
        """The answer of a call that ends with ``error``, wherever it was raised (in the run,
        or by a face before it: a refused API key, an unreadable body). What the call was
        (its code, InstaMsg's status) is recorded here, once; rendering changes nothing."""
        inv.code = error.code
        if isinstance(error.upstream, dict) and isinstance(error.upstream.get("status"), int):
            inv.upstream_status = error.upstream["status"]
        envelope = cls.error_envelope(inv, error)
        # The RapidAPI twin answers every block call with 200; a wrong method is no call.
        status = 200 if inv.rapid and error.http_status != 405 else error.http_status
        headers = [JSON_TYPE]
        if error.retry_after_s is not None:
            headers.append(("Retry-After", str(max(1, round(error.retry_after_s)))))
        elif error.http_status == 429:
            headers.append(("Retry-After", "1"))  # InstaMsg said to slow down, not how long
        headers.extend(error.headers)
        return Answer(status, headers, envelope, jsonx.dumps(envelope))

    @staticmethod
    def envelope(inv: Invocation, callback: str, result) -> dict:
        """The envelope; ``warnings`` names arguments that were ignored."""
        body = {"callback": callback, "contextWrites": {inv.context_key: result}}
        if inv.warnings:
            body["warnings"] = inv.warnings
        return body

    @classmethod
    def error_envelope(cls, inv: Invocation, error: ConnectorError) -> dict:
        """The error envelope for ``error``, with no secret of the call's in its text."""
        body = error.to_dict()
        secrets = redaction(inv.secrets)
        if secrets:
            # Only the free text: the codes, field names and ids are the envelope's own words
            # (a secret that reads like one of them must not rewrite it). InstaMsg's body is
            # its text throughout, the names in its objects too.
            for part in ("status_msg", "errors", "upstream"):
                if part in body:
                    body[part] = scrub(body[part], secrets, keys=part == "upstream")
        # Cut only now: a secret cut in two before scrubbing would leave its first half.
        cut_to_limits(body)
        body["request_id"] = inv.request_id
        return cls.envelope(inv, "error", body)
