"""The connector's HTTP front, on Flask: request body -> arguments -> block -> envelope.

One Blueprint holds every route. ``POST /blocks/<name>`` answers with meaningful HTTP
statuses; ``POST /api/InstaMsg/<name>`` is the RapidAPI-compatible twin that always
answers 200 (the envelope's ``callback`` says what happened). Every error leaves through
the error handlers registered by ``register_errors``, which write the envelope; one
``after_request`` hook adds ``X-Request-Id``, keeps an Idempotency-Key's answer and
writes the access log line.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import hmac
import os
import re
import time
from urllib.parse import quote

from flask import Blueprint, Flask, Request, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from connector import jsonx, logs, manifest, metrics
from connector.errors import (
    ConnectorError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InternalError,
    InvalidFields,
    InvalidRequest,
    PayloadTooLarge,
    Unauthorized,
)
from connector.fetch import caller_gone
from connector.idempotency import (
    MAX_KEY,
    Lifetimes,
    SendWatch,
    open_idempotency_store,
    outcome_unknown,
    request_digest,
)
from connector.redis_state import open_token_cache
from connector.registry import REGISTRY, Context
from connector.tokens import TokenManager, fingerprint

#: What an Idempotency-Key keeps once its call may have reached InstaMsg: an answer InstaMsg
#: gave definitely (a success, or a 4xx refusal). Anything else after sending (a timeout, a
#: broken connection, a 5xx, a bug) leaves the outcome unknown: the key answers
#: OUTCOME_UNKNOWN. A call that certainly sent nothing keeps nothing: its key is freed.
KEPT_CODES = frozenset({"SUCCESS", "API_ERROR"})
RAPID_PREFIX = "/api/InstaMsg/"
#: Routes open without an API key: the probes, and the playground page with its assets
#: (the page asks for the key itself; the manifest and the blocks stay behind it).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
OPEN_PREFIXES = ("/playground/",)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
REDACTED = "[redacted]"
CHUNK = 64 * 1024
JSON = "application/json"

bp = Blueprint("connector", __name__)


class ConnectorRequest(Request):
    """Flask's request, with a form parser that says when a form cannot be read (werkzeug's
    default drops a broken multipart body silently, which would look like missing args)."""

    def make_form_data_parser(self):
        parser = super().make_form_data_parser()
        parser.silent = False
        return parser


class Connector:
    """What every call shares in one process: settings, the upstream client, the managed
    token cache and the idempotency store. With REDIS_URL both live in Redis, shared by
    every instance; without, in a SQLite file and this process. Nothing connects before
    the first call that needs it (gunicorn forks workers after the app is built)."""

    def __init__(self, settings, upstream):
        self.settings = settings
        self.upstream = upstream
        self.tokens = TokenManager(upstream, REGISTRY, shared=open_token_cache(settings))
        self._idempotency = None

    @property
    def idempotency(self):
        if self._idempotency is None:
            self._idempotency = open_idempotency_store(self.settings)
        return self._idempotency

    def readiness(self) -> list[str]:
        """What keeps this instance from serving: an empty list when its stores answer."""
        try:
            store = self.idempotency
        except Exception as exc:  # noqa: BLE001  (an unusable data dir, say: report it)
            kind = getattr(exc, "fault", None) or type(exc).__name__
            return [f"the idempotency store cannot be opened ({kind})"]
        failed = store.check()
        return [failed] if failed else []


def connector() -> Connector:
    """The process's shared state, from the app serving this request."""
    return current_app.extensions["instamsg"]


def json_response(payload, status=200) -> Response:
    """``payload`` as a JSON response (orjson)."""
    return Response(jsonx.dumps(payload), status=status, mimetype=JSON)


class Call:
    """What one request carries from arrival to its log line. Kept as ``g.call`` and read
    once per function: each ``g.x`` is a context look-up, and they added up (bench/README)."""

    __slots__ = (
        "started",
        "request_id",
        "rapid",
        "block",
        "code",
        "upstream_status",
        "claim",
        "context_key",
        "secrets",
        "warnings",
        "ignored",
        "counted",
        "nothing_sent",
        "watch",
        "identity",
    )

    def __init__(self, request_id: str, rapid: bool):
        self.started = time.perf_counter()
        self.request_id = request_id
        self.rapid = rapid
        self.block = self.code = self.upstream_status = self.claim = None
        self.context_key = "to"
        self.secrets: list[str] = []
        self.warnings: list[str] = []
        self.ignored: list[str] = []
        self.counted = False
        self.nothing_sent = False
        #: a keyed call's SendWatch: whether its block's call may have reached InstaMsg
        self.watch: SendWatch | None = None
        #: who this caller is, as authenticate checked it (rate limits count under it)
        self.identity: str | None = None


def current_call() -> Call:
    """This request's Call (made here when the request failed before start_call ran)."""
    call = g.get("call")
    if call is None:
        call = g.call = Call(os.urandom(16).hex(), request.path.startswith(RAPID_PREFIX))
    return call


# -- every request: its id, the API key, and what is written after ------------------------


@bp.before_app_request
def start_call():
    headers, path = request.headers, request.path
    given = headers.get("X-Request-Id", "")
    call = Call(
        given if REQUEST_ID.fullmatch(given) else os.urandom(16).hex(),
        path.startswith(RAPID_PREFIX),
    )
    g.call = call
    metrics.IN_FLIGHT.inc()
    call.counted = True
    authenticate(call, headers, path)


def authenticate(call: Call, headers, path: str) -> None:
    """With CONNECTOR_API_KEYS set, every route but the probes needs one of them."""
    settings = connector().settings
    keys = settings.api_keys
    if not keys or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return
    given = headers.get("X-API-Key", "").encode()
    if given and any(hmac.compare_digest(given, key.encode()) for key in keys):
        call.identity = "key:" + hashlib.sha256(given).hexdigest()[:32]
        return
    proxy = settings.rapidapi_proxy_secret
    if proxy and (call.rapid or path == RAPID_PREFIX.rstrip("/")):
        secret = headers.get("X-RapidAPI-Proxy-Secret", "").encode()
        if secret and hmac.compare_digest(secret, proxy.encode()):
            # RapidAPI's proxy names its user once its secret is right; without a name the
            # caller is counted by address. X-API-Key was not checked here: never counted.
            user = headers.get("X-RapidAPI-User", "")
            if user:
                call.identity = "rapidapi:" + hashlib.sha256(user.encode()).hexdigest()[:32]
            return
    raise Unauthorized(
        "This connector needs an API key: send it in the X-API-Key header"
        + (" (or X-RapidAPI-Proxy-Secret on /api/InstaMsg)." if proxy else ".")
    )


@bp.after_app_request
def finish_call(response: Response) -> Response:
    call = current_call()
    if call.claim is not None:
        response = keep_answer(call, response)
    response.headers["X-Request-Id"] = call.request_id
    duration = time.perf_counter() - call.started
    if call.block is not None or request.endpoint == "connector.run_block":
        metrics.count_call(call.block or "(unknown)", call.code or "UNKNOWN", duration)
    logs.access(
        call.request_id,
        request.method,
        request.path[:200],
        response.status_code,
        duration * 1000,
        call.block,
        call.code,
        call.upstream_status,
        call.ignored,
    )
    return response


@bp.teardown_app_request
def end_call(exc=None):
    call = current_call()
    if call.counted:
        call.counted = False
        metrics.IN_FLIGHT.dec()
    claim, call.claim = call.claim, None
    if claim is not None:
        # The answer never reached finish_call: the worker is stopping (the request's greenlet
        # was killed after the graceful timeout) or a bug. A call that may have sent keeps
        # OUTCOME_UNKNOWN; only one that certainly sent nothing frees its key.
        store = connector().idempotency
        try:
            if call.watch is not None and call.watch.may_have_sent:
                store.settle_unknown(*claim)
            else:
                store.release(*claim)
        except ConnectorError:
            pass  # logged by the store; the claim's lease ends it as OUTCOME_UNKNOWN


# -- reading arguments --------------------------------------------------------------------


#: The most arguments one call may carry: a block takes about twenty, and every argument
#: costs work (an ignored one, a hint): a body of a million names must not hold a worker.
MAX_ARGS = 500


def read_args() -> dict:
    """The arguments: the body's (any accepted kind) over the query string's."""
    args = query_args()
    args.update(body_args())
    if len(args) > MAX_ARGS:
        raise InvalidRequest(
            f"The call carries {len(args)} arguments; a block takes at most {MAX_ARGS}. "
            "Send only the block's arguments (GET /blocks/<name> lists them)."
        )
    if any(isinstance(key, str) and key.endswith("[]") for key in args):
        return {unbracket(key): value for key, value in args.items()}
    return args


def query_args() -> dict:
    """Arguments in a POST's query string; ``stream`` there is a switch, not an argument."""
    if not request.environ.get("QUERY_STRING"):
        return {}
    return {k: v[0] if len(v) == 1 else v for k, v in request.args.lists() if k != "stream"}


def unbracket(key):
    """``pubTopics[]`` (PHP-style list fields, as some form builders send them) is
    ``pubTopics``; form fields given twice are already a list."""
    return key[:-2] if isinstance(key, str) and key.endswith("[]") and len(key) > 2 else key


def looks_like_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[")


def body_args() -> dict:
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        return read_form()
    raw = request.get_data()
    if mimetype == "application/x-www-form-urlencoded" and not looks_like_json(raw):
        return read_form()
    # JSON, or JSON sent with a form content type (curl -d '{...}' without -H).
    if not raw.strip():
        return {}
    try:
        body = jsonx.loads(raw)
    except ValueError:
        raise InvalidRequest(
            "The request body is not valid JSON. Send a JSON object (optionally as "
            '{"args": {...}}), form fields, or multipart/form-data.'
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            'The request body must be a JSON object: {"args": {...}} or the arguments.'
        )
    problem = jsonx.request_problem(body)
    if problem:
        raise InvalidRequest(f"The request body cannot be taken: {problem}.")
    if "args" in body:
        args = body["args"]
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise InvalidRequest('"args" must be a JSON object of the block\'s arguments.')
        if "to" in body and "to" not in args:
            args = {**args, "to": body["to"]}
        return args
    return body


def read_form() -> dict:
    try:
        form, files = request.form, request.files
    except ValueError:
        raise InvalidRequest("The form body could not be read.") from None
    # A part whose name werkzeug cannot read comes back named None: it is no argument.
    args = {k: v[0] if len(v) == 1 and not k.endswith("[]") else v for k, v in form.lists() if k}
    for key, storage in files.items():
        if key:
            args[key] = storage
    return args


#: How many ignored arguments one answer names, at most.
MAX_WARNINGS = 20


def ignored_warnings(call: Call, blk, args) -> list[str]:
    """A sentence for each argument the block does not take (accepted, and ignored),
    with the closest argument name where one is near."""
    known = blk.arg_names
    strangers = [key for key in args if key not in known]
    if not strangers:
        return []
    call.ignored = [str(key)[:80] for key in strangers[:MAX_WARNINGS]]
    lowered = blk.arg_names_folded
    known = [key for key, _ in blk.args]  # in declaration order, for the closest match
    warnings = []
    for key in call.ignored:
        same = lowered.get(key.lower())
        close = [same] if same else difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        where = f'"{key}" is not an argument of {blk.name}'
        if same:
            warnings.append(f'{where}; names are case-sensitive: did you mean "{same}"?')
        elif close:
            warnings.append(f'{where}; did you mean "{close[0]}"?')
        else:
            warnings.append(f"{where}; it was ignored.")
    if len(strangers) > MAX_WARNINGS:
        warnings.append(f"{len(strangers) - MAX_WARNINGS} more arguments were ignored.")
    return warnings


def take_context_key(args: dict) -> str:
    """The optional ``to`` argument: the contextWrites key of the answer."""
    to = args.pop("to", None)
    if to is None or to == "":
        return "to"
    if not isinstance(to, str) or len(to) > 100 or not to.strip():
        why = "Must be the name (text, at most 100 characters) of the result's key."
        raise InvalidFields("to: " + why, fields=["to"], errors={"to": [why]})
    return to


def secret_values(blk, args) -> list[str]:
    """The secrets this call carries, to scrub from whatever it answers."""
    found = [v for k in blk.secret_keys if isinstance(v := args.get(k), str) and len(v) >= 4]
    key, secret = args.get("clientKey"), args.get("clientSecret")
    if isinstance(key, str) and isinstance(secret, str):
        # The Basic header they make: sent by the OAuth blocks and by managed-token fetches.
        found.append(base64.b64encode(f"{key}:{secret}".encode()).decode("ascii"))
    return found


SWITCH_ON = ("1", "true", "yes")


def wants_stream(args: dict) -> bool:
    """downloadFile's ``stream`` switch, in the query (``?stream=1``) or in the body."""
    given = args.pop("stream", None)
    if isinstance(given, bool):
        return given
    if given is not None and str(given).strip().lower() in SWITCH_ON:
        return True
    return request.args.get("stream", "").strip().lower() in SWITCH_ON


# -- the routes ---------------------------------------------------------------------------


@bp.post("/blocks/<name>")
@bp.post(RAPID_PREFIX + "<name>")
def run_block(name):
    """Run one block: validate, call InstaMsg, answer the envelope."""
    call = current_call()
    blk = REGISTRY.get(name)
    call.block = blk.name
    args = read_args()
    call.secrets = secret_values(blk, args)
    call.context_key = take_context_key(args)
    streamed = blk.streamable and wants_stream(args)
    call.warnings = ignored_warnings(call, blk, args)
    raw_args = args
    loaded = blk.load(args)
    key = request.headers.get("Idempotency-Key")
    if key is not None and blk.method != "GET":  # a read repeated is harmless: no key kept
        replay = claim_key(call, blk, raw_args, key)
        if replay is not None:
            return replay
    state = connector()
    ctx = Context(upstream=state.upstream, settings=state.settings, request_id=call.request_id)
    if blk.prepare is not None:
        ctx.caller_gone = caller_gone(request.environ)
        loaded = blk.prepare(loaded, ctx)
    reply = state.tokens.send(blk, loaded, call.request_id, call.secrets, call.watch)
    call.upstream_status = reply.status_code
    call.code = "SUCCESS"
    if streamed:
        return stream(reply, loaded["filename"])
    result = blk.result(reply, loaded, ctx)
    return json_response(envelope(call, "success", result))


def envelope(call: Call, callback: str, result) -> dict:
    """The envelope; ``warnings`` names arguments that were ignored."""
    body = {"callback": callback, "contextWrites": {call.context_key: result}}
    if call.warnings:
        body["warnings"] = call.warnings
    return body


@bp.get("/blocks/<name>")
def describe_block(name):
    """One block's manifest entry; with a query, a 405 saying blocks run with POST."""
    blk = REGISTRY.get(name)
    if request.args:
        refusal = InvalidRequest(
            f"Blocks run with POST: POST /blocks/{blk.name} with the arguments (in the body or "
            f"the query string). GET /blocks/{blk.name} without a query describes the block.",
            http_status=405,
        )
        refusal.headers = [("Allow", "GET, HEAD, OPTIONS, POST")]
        raise refusal
    return json_response(manifest.block_entry(blk))


@bp.get("/blocks")
def list_blocks():
    """Every block's manifest entry."""
    return json_response(manifest.manifest()["blocks"])


@bp.get("/manifest.json")
@bp.get("/api/InstaMsg")
def whole_manifest():
    """The manifest flow builders draw their forms from."""
    return json_response(manifest.manifest())


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document, generated from the same schemas."""
    return json_response(manifest.openapi())


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus' text format, summed over gunicorn's workers."""
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers. Nothing else is checked."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Readiness: 200 when this instance's stores answer (Redis PING, or the SQLite file
    can be written), else 503 naming what failed."""
    state = connector()
    failed = state.readiness()
    store = "redis" if state.settings.redis_url else "sqlite"
    if failed:
        response = json_response({"status": "unavailable", "store": store, "failed": failed}, 503)
        response.headers["Retry-After"] = "5"
        return response
    return json_response({"status": "ready", "store": store})


def stream(reply, filename) -> Response:
    """The upstream's bytes, passed through as they arrive."""
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
    }
    length = reply.headers.get("Content-Length")
    if length and length.isascii() and length.isdigit():
        headers["Content-Length"] = length
    response = Response(
        reply.iter_content(CHUNK),
        headers=headers,
        content_type=reply.headers.get("Content-Type") or "application/octet-stream",
        direct_passthrough=True,
    )
    response.call_on_close(reply.close)
    return response


# -- Idempotency-Key ----------------------------------------------------------------------


def claim_key(call: Call, blk, args, key):
    """Claim ``key`` for this call, or answer from what the key already holds."""
    if not 1 <= len(key) <= MAX_KEY:
        raise InvalidRequest(f"The Idempotency-Key header must be 1 to {MAX_KEY} characters.")
    if "accessToken" in args:
        scope = fingerprint("token", str(args["accessToken"]))
    else:
        scope = fingerprint("app", str(args.get("clientKey")), str(args.get("clientSecret")))
    digest = request_digest(blk.name, args, call.context_key, call.rapid)
    try:
        claim = connector().idempotency.claim(scope, key, blk.name, digest)
    except ConnectorError:
        metrics.IDEMPOTENCY.labels("unavailable").inc()
        raise
    if claim.kind != "new":
        metrics.IDEMPOTENCY.labels("replayed" if claim.kind == "replay" else claim.kind).inc()
    if claim.kind == "reused":
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for another call (other arguments or another "
            "block). Use a new key for a new call."
        )
    if claim.kind == "in_use":
        raise IdempotencyKeyInUse(
            "A call with this Idempotency-Key is still running. Wait for it, then send the "
            "same call again to get its answer."
        )
    if claim.kind == "abandoned":  # the key's answer: its call may have run, outcome unknown
        error = outcome_unknown()
        error.headers = [("Idempotent-Replayed", "true")]
        raise error
    if claim.kind == "replay":
        call.code = "REPLAYED"
        response = Response(claim.body, status=claim.status, headers=claim.headers)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    call.claim = (scope, key, claim.owner)
    # From the claim on, the call must not start sending past send_by: its lease would end
    # while it runs and a retry could find it abandoned (connector.idempotency.Lifetimes).
    call.watch = SendWatch(time.monotonic() + Lifetimes.of(connector().settings).send_by)
    return None


def keep_answer(call: Call, response: Response) -> Response:
    """Settle a keyed call's key once its answer is ready, and return the answer to send.

    - Nothing reached InstaMsg (refused before sending, a failed token fetch, a connect
      error, an upstream 429): the key is freed, so a retry with it runs.
    - InstaMsg answered definitely (a success, a 4xx): the answer is kept for replays.
    - Otherwise the call may have taken effect and nobody knows: the key answers
      OUTCOME_UNKNOWN, to this caller too, so that the first answer and every replay agree.
      The same when the answer could not be kept: never a 200 for a key left unsettled.
    """
    scope, key, owner = call.claim
    call.claim = None
    store = connector().idempotency
    watch = call.watch
    try:
        if watch is None or not watch.may_have_sent:
            store.release(scope, key, owner)
            return response
        definite = call.code in KEPT_CODES and (
            call.code == "SUCCESS" or (call.upstream_status or 500) < 500
        )
        if definite and not response.is_streamed:
            headers = [[k, v] for k, v in response.headers.items()]
            body = response.get_data()
            if store.complete(scope, key, owner, response.status_code, headers, body):
                return response
        else:
            store.settle_unknown(scope, key, owner)
    except ConnectorError:
        pass  # logged by the store; the claim's lease ends it as OUTCOME_UNKNOWN
    metrics.IDEMPOTENCY.labels("unknown").inc()
    return error_response(outcome_unknown())


# -- errors -------------------------------------------------------------------------------


def error_response(error: ConnectorError) -> Response:
    """The error envelope: on /blocks with the error's status, on /api/InstaMsg with 200."""
    call = current_call()
    call.code = error.code
    call.nothing_sent = error.nothing_sent
    if isinstance(error.upstream, dict) and isinstance(error.upstream.get("status"), int):
        call.upstream_status = error.upstream["status"]
    body = error.to_dict()
    secrets = call.secrets
    if secrets:
        # Only the free text: the codes, field names and ids are the envelope's own words
        # (a secret that reads like one of them must not rewrite it).
        for part in ("status_msg", "errors", "upstream"):
            if part in body:
                body[part] = scrub(body[part], secrets)
    body["request_id"] = call.request_id
    response = json_response(
        envelope(call, "error", body),
        # The RapidAPI twin answers every block call with 200; a wrong method is no call.
        200 if call.rapid and error.http_status != 405 else error.http_status,
    )
    if error.retry_after_s is not None:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
    elif error.http_status == 429:
        response.headers["Retry-After"] = "1"  # InstaMsg said to slow down, not for how long
    for name, value in error.headers:
        response.headers[name] = value
    return response


def http_error(error: HTTPException) -> Response:
    """Flask's own refusals (no route, wrong method, body too large) as envelopes."""
    if isinstance(error, RequestEntityTooLarge):
        limit = connector().settings.max_request_bytes
        return error_response(
            PayloadTooLarge(
                f"The request body is larger than the {limit}-byte limit (MAX_REQUEST_BYTES)."
            )
        )
    if isinstance(error, MethodNotAllowed):
        allow = ", ".join(sorted(error.valid_methods or ()))
        refusal = InvalidRequest(
            f"{request.method} is not allowed here (allowed: {allow}). Blocks run with POST; "
            "lists are read with GET.",
            http_status=405,
        )
        refusal.headers = [("Allow", allow)]
        return error_response(refusal)
    if isinstance(error, NotFound):
        return error_response(
            InvalidRequest(
                "There is no such route. POST /blocks/<name> runs a block; GET /blocks lists them.",
                http_status=404,
            )
        )
    return error_response(
        InvalidRequest(f"The request was refused: {error.name}.", http_status=error.code or 400)
    )


def unexpected_error(exc: Exception) -> Response:
    """A bug: answer, log its type and place, never its text."""
    logs.LOGGER.error(
        "unexpected error",
        exc_info=exc,
        extra={"fields": {"request_id": current_call().request_id, "block": current_call().block}},
    )
    return error_response(
        InternalError(
            "The connector failed while handling this call. It was logged with the request "
            "id; please report it."
        )
    )


def register_errors(app: Flask) -> None:
    app.register_error_handler(ConnectorError, error_response)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


#: A secret this long is redacted wherever it appears, inside other text too.
LONG_SECRET = 12


def redaction(secrets) -> re.Pattern | None:
    """What to redact of ``secrets``, as one pattern (None: nothing).

    The rule: a secret of LONG_SECRET characters or more is redacted wherever it appears (no
    word of prose is that long by chance, and tokens sit inside URLs and headers). A shorter
    one is redacted only where it stands as a whole token (not touching a letter or digit),
    and not at all when it is made of letters alone: "wrong" as a client secret cannot be
    told from the word in InstaMsg's "wrong client secret", and rewriting every such word
    would garble the answer for no protection (the caller sent that secret, and it is too
    weak to be one). Tokens the connector fetched and Basic headers are long: always hidden.
    """
    parts = []
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= LONG_SECRET:
            parts.append(re.escape(secret))
        elif not secret.isalpha():
            parts.append(rf"(?<![^\W_]){re.escape(secret)}(?![^\W_])")
    return re.compile("|".join(parts)) if parts else None


def scrub(value, secrets):
    """``value`` with every secret redacted from its text (values only, keys as they are);
    ``secrets`` is a list of secrets or a pattern from ``redaction``."""
    pattern = secrets if isinstance(secrets, re.Pattern) or secrets is None else redaction(secrets)
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: scrub(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, pattern) for v in value]
    return value
