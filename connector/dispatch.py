"""The connector's HTTP front: request body -> arguments -> block -> envelope.

A plain WSGI application. Every call runs through ``Connector.__call__``, which
routes, turns every error into the envelope in one place (``error_reply``) and
writes one structured log line. ``/blocks/<name>`` answers with meaningful
HTTP statuses; ``/api/InstaMsg/<name>`` is the RapidAPI-compatible twin that
always answers 200 (the envelope's ``callback`` says what happened).

Why not Flask here: on the 2-core bench machine Flask's request handling cost
more than the whole budget the connector has above a bare pass-through (see
bench/README.md). The routes are few and fixed.
"""

from __future__ import annotations

import base64
import hmac
import io
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, quote

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data
from werkzeug.test import Client
from werkzeug.wrappers import Response

from connector import jsonx, logs, manifest
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
from connector.idempotency import MAX_KEY, SQLiteIdempotencyStore, request_digest
from connector.registry import REGISTRY, Context
from connector.tokens import TokenManager, fingerprint

RAPID_PREFIX = "/api/InstaMsg/"
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
BLOCKS_PREFIX = "/blocks/"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
REDACTED = "[redacted]"
CHUNK = 64 * 1024
JSON_TYPE = ("Content-Type", "application/json")
STATUS_TEXT = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    413: "413 Payload Too Large",
    422: "422 Unprocessable Entity",
    429: "429 Too Many Requests",
    500: "500 Internal Server Error",
    502: "502 Bad Gateway",
    504: "504 Gateway Timeout",
}


def status_line(code: int) -> str:
    return STATUS_TEXT.get(code) or f"{code} Status"


class Call:
    """What one HTTP request carries through the dispatcher."""

    __slots__ = (
        "environ",
        "request_id",
        "rapid",
        "block",
        "context_key",
        "secrets",
        "code",
        "upstream_status",
        "claim",
    )

    def __init__(self, environ):
        self.environ = environ
        given = environ.get("HTTP_X_REQUEST_ID", "")
        self.request_id = given if REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
        self.rapid = environ.get("PATH_INFO", "").startswith(RAPID_PREFIX)
        self.block = None
        self.context_key = "to"
        self.secrets: list[str] = []
        self.code = None
        self.upstream_status = None
        #: (scope, key) of an Idempotency-Key this call claimed
        self.claim = None


# -- reading arguments --------------------------------------------------------------------


def read_body(environ, limit: int) -> bytes:
    """The raw body, refusing one over ``limit`` whether it is sized or chunked."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            size = int(length)
        except ValueError:
            raise InvalidRequest("The Content-Length header is not a number.") from None
        if size > limit:
            raise too_large(limit)
        return stream.read(size) if size else b""
    if environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING"):
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise too_large(limit)
        return data
    return b""


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than the {limit}-byte limit (MAX_REQUEST_BYTES)."
    )


def read_form(environ, limit: int) -> dict:
    length = environ.get("CONTENT_LENGTH")
    if length and length.isascii() and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    if not length:
        # An unsized (chunked) form: read it whole under the limit, then parse that.
        data = read_body(environ, limit)
        environ = {**environ, "wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data))}
    try:
        _, form, files = parse_form_data(
            environ, max_form_memory_size=limit, max_content_length=limit, silent=False
        )
    except RequestEntityTooLarge:
        raise too_large(limit) from None
    except ValueError:
        raise InvalidRequest("The form body could not be read.") from None
    # A part whose name werkzeug cannot read comes back named None: it is no argument.
    args = {k: v[0] if len(v) == 1 else v for k, v in form.lists() if k}
    for key, storage in files.items():
        if key:
            args[key] = storage
    return args


def read_args(environ, limit: int) -> dict:
    """The arguments, from any of the accepted body kinds."""
    mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if mimetype in FORM_TYPES:
        return read_form(environ, limit)
    raw = read_body(environ, limit)
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


def wants_stream(environ) -> bool:
    query = environ.get("QUERY_STRING", "")
    if "stream=" not in query:
        return False
    value = parse_qs(query).get("stream", [""])[0]
    return value.strip().lower() in ("1", "true", "yes")


# -- the application ----------------------------------------------------------------------


class Connector:
    """The WSGI application. ``extra_routes`` maps a path prefix to a handler
    ``(environ, call) -> (status, headers, body)`` (the sandbox's admin routes)."""

    def __init__(self, settings, upstream, extra_routes=None):
        self.settings = settings
        self.upstream = upstream
        self.extra_routes = dict(extra_routes or {})
        self.limit = settings.max_request_bytes
        self.tokens = TokenManager(upstream, REGISTRY)
        self._idempotency = None  # opened on the first Idempotency-Key

    def test_client(self) -> Client:
        return Client(self, Response)

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        call = Call(environ)
        try:
            status, headers, body = self.route(environ, call)
        except ConnectorError as error:
            status, headers, body = self.error_reply(call, error)
        except Exception as exc:  # a bug: answer, log its type and place, never its text
            logs.LOGGER.error(
                "unexpected error",
                exc_info=exc,
                extra={"fields": {"request_id": call.request_id, "block": call.block}},
            )
            status, headers, body = self.error_reply(
                call,
                InternalError(
                    "The connector failed while handling this call. It was logged with the "
                    "request id; please report it."
                ),
            )
        if call.claim is not None:
            body = self.keep_answer(call, status, headers, body)
        headers.append(("X-Request-Id", call.request_id))
        start_response(status_line(status), headers)
        logs.access(
            call.request_id,
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO", "")[:200],
            status,
            (time.perf_counter() - started) * 1000,
            call.block,
            call.code,
            call.upstream_status,
        )
        return body

    # -- routing ---------------------------------------------------------------------

    def authenticate(self, environ, path) -> None:
        """With CONNECTOR_API_KEYS set, every route but /healthz needs one of them."""
        keys = self.settings.api_keys
        if not keys or path == "/healthz":
            return
        given = environ.get("HTTP_X_API_KEY", "").encode()
        if given and any(hmac.compare_digest(given, key.encode()) for key in keys):
            return
        proxy = self.settings.rapidapi_proxy_secret
        if proxy and path.startswith(RAPID_PREFIX):
            secret = environ.get("HTTP_X_RAPIDAPI_PROXY_SECRET", "").encode()
            if secret and hmac.compare_digest(secret, proxy.encode()):
                return
        raise Unauthorized(
            "This connector needs an API key: send it in the X-API-Key header"
            + (" (or X-RapidAPI-Proxy-Secret on /api/InstaMsg)." if proxy else ".")
        )

    def route(self, environ, call):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        self.authenticate(environ, path)
        for prefix in (BLOCKS_PREFIX, RAPID_PREFIX):
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                name = path[len(prefix) :]
                if method == "POST":
                    return self.run_block(environ, call, name)
                if method == "GET" and prefix == BLOCKS_PREFIX:
                    return self.json(200, manifest.block_entry(REGISTRY.get(name)))
                return self.not_allowed(environ, "GET, POST" if prefix == BLOCKS_PREFIX else "POST")
        if path in ("/blocks", "/manifest.json", "/api/InstaMsg", "/openapi.json", "/healthz"):
            if method not in ("GET", "HEAD"):
                return self.not_allowed(environ, "GET, HEAD")
            if path == "/healthz":
                return self.json(200, {"status": "ok"})
            if path == "/blocks":
                return self.json(200, manifest.manifest()["blocks"])
            if path == "/openapi.json":
                return self.json(200, manifest.openapi())
            return self.json(200, manifest.manifest())
        for prefix, handler in self.extra_routes.items():
            if path.startswith(prefix):
                return handler(environ, call)
        raise InvalidRequest(
            "There is no such route. POST /blocks/<name> runs a block; GET /blocks lists them.",
            http_status=404,
        )

    def not_allowed(self, environ, allow: str):
        error = InvalidRequest(
            f"{environ.get('REQUEST_METHOD')} is not allowed here (allowed: {allow}). Blocks run "
            "with POST; lists are read with GET.",
            http_status=405,
        )
        error.headers = [("Allow", allow)]
        raise error

    @staticmethod
    def json(status, payload):
        body = jsonx.dumps(payload)
        return status, [JSON_TYPE, ("Content-Length", str(len(body)))], [body]

    # -- running blocks ----------------------------------------------------------------

    def run_block(self, environ, call, name):
        blk = REGISTRY.get(name)
        call.block = blk.name
        args = read_args(environ, self.limit)
        call.secrets = secret_values(blk, args)
        call.context_key = take_context_key(args)
        raw_args = args
        loaded = blk.load(args)
        key = environ.get("HTTP_IDEMPOTENCY_KEY")
        if key is not None:
            replay = self.claim_key(call, blk, raw_args, key)
            if replay is not None:
                return replay
        ctx = Context(upstream=self.upstream, settings=self.settings, request_id=call.request_id)
        if blk.prepare is not None:
            loaded = blk.prepare(loaded, ctx)
        reply = self.tokens.send(blk, loaded, call.request_id, call.secrets)
        call.upstream_status = reply.status_code
        call.code = "SUCCESS"
        if blk.streamable and wants_stream(environ):
            return self.stream(reply, loaded["filename"])
        result = blk.result(reply, loaded, ctx)
        return self.json(200, {"callback": "success", "contextWrites": {call.context_key: result}})

    # -- Idempotency-Key ---------------------------------------------------------------

    def claim_key(self, call, blk, args, key):
        """Claim ``key`` for this call, or answer from what the key already holds."""
        if not 1 <= len(key) <= MAX_KEY:
            raise InvalidRequest(f"The Idempotency-Key header must be 1 to {MAX_KEY} characters.")
        if "accessToken" in args:
            scope = fingerprint("token", str(args["accessToken"]))
        else:
            scope = fingerprint("app", str(args.get("clientKey")), str(args.get("clientSecret")))
        digest = request_digest(blk.name, args, call.context_key, call.rapid)
        claim = self.idempotency.claim(scope, key, blk.name, digest)
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
        if claim.kind == "replay":
            call.code = "REPLAYED"
            headers = [tuple(pair) for pair in claim.headers]
            headers.append(("Idempotent-Replayed", "true"))
            return claim.status, headers, [claim.body]
        call.claim = (scope, key)
        return None

    def keep_answer(self, call, status, headers, body):
        """Keep a finished call's answer under its key, or free the key for a retry when the
        call was refused before it ran (or its answer is a stream, too large to keep)."""
        scope, key = call.claim
        if call.code in NOT_KEPT or not isinstance(body, list):
            self.idempotency.release(scope, key)
            return body
        payload = b"".join(body)
        self.idempotency.complete(scope, key, status, [list(h) for h in headers], payload)
        return [payload]

    @property
    def idempotency(self):
        if self._idempotency is None:
            self._idempotency = SQLiteIdempotencyStore(
                Path(self.settings.data_dir) / "idempotency.sqlite3",
                ttl=self.settings.idempotency_ttl,
                lease=self.settings.deadline + 30,
            )
        return self._idempotency

    @staticmethod
    def stream(reply, filename):
        """The upstream's bytes, passed through as they arrive."""
        headers = [
            ("Content-Type", reply.headers.get("Content-Type") or "application/octet-stream"),
            ("Content-Disposition", f"attachment; filename*=UTF-8''{quote(filename, safe='')}"),
        ]
        length = reply.headers.get("Content-Length")
        if length and length.isascii() and length.isdigit():
            headers.append(("Content-Length", length))
        return 200, headers, ClosingIterator(reply)

    # -- errors ------------------------------------------------------------------------

    def error_reply(self, call, error: ConnectorError):
        call.code = error.code
        body = error.to_dict()
        if call.secrets:
            # Only the free text: the codes, field names and ids are the envelope's own words
            # (a secret that reads like one of them must not rewrite it).
            for part in ("status_msg", "errors", "upstream"):
                if part in body:
                    body[part] = scrub(body[part], call.secrets)
        body["request_id"] = call.request_id
        payload = jsonx.dumps({"callback": "error", "contextWrites": {call.context_key: body}})
        status = 200 if call.rapid else error.http_status
        headers = [JSON_TYPE, ("Content-Length", str(len(payload)))]
        if error.retry_after_s is not None:
            headers.append(("Retry-After", str(max(1, round(error.retry_after_s)))))
        elif error.http_status == 429:
            headers.append(("Retry-After", "1"))  # InstaMsg said to slow down, not for how long
        headers.extend(error.headers)
        return status, headers, [payload]


def scrub(value, secrets):
    """``value`` with every secret replaced in its text (values only, keys as they are)."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value


class ClosingIterator:
    """Streams a Reply and releases its connection when the server is done with it."""

    def __init__(self, reply):
        self.reply = reply
        self.chunks = reply.iter_content(CHUNK)

    def __iter__(self):
        return self.chunks

    def close(self):
        self.chunks.close()
        self.reply.close()
