"""The HTTP routes: request body -> arguments -> block -> envelope.

``/blocks/<name>`` answers with meaningful HTTP statuses; ``/api/InstaMsg/<name>``
is the RapidAPI-compatible twin that always answers 200 (the envelope's
``callback`` says what happened).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from connector import logs, manifest
from connector.errors import (
    ConnectorError,
    InternalError,
    InvalidFields,
    InvalidRequest,
    PayloadTooLarge,
)
from connector.registry import REGISTRY, Context

bp = Blueprint("connector", __name__)

RAPID_PREFIX = "/api/InstaMsg/"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
REDACTED = "[redacted]"
CHUNK = 64 * 1024


def json_response(payload, status=200, headers=None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, headers=headers, mimetype="application/json")


def envelope(callback: str, result) -> dict:
    return {"callback": callback, "contextWrites": {g.get("context_key", "to"): result}}


# -- per request bookkeeping ------------------------------------------------------


@bp.before_app_request
def start_request():
    given = request.headers.get("X-Request-Id", "")
    g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    g.started = time.perf_counter()


@bp.after_app_request
def finish_request(response):
    response.headers["X-Request-Id"] = g.get("request_id", "")
    fields = {
        "request_id": g.get("request_id"),
        "method": request.method,
        "path": request.path[:200],
        "status": response.status_code,
        "duration_ms": round(
            (time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2
        ),
    }
    for key in ("block", "code", "upstream_status"):
        if g.get(key) is not None:
            fields[key] = g.get(key)
    logs.event("request", **fields)
    return response


# -- reading arguments ------------------------------------------------------------


def refuse_cut_body() -> None:
    """A chunked body (no Content-Length) is cut at the limit by werkzeug, not refused:
    if reading stopped at the limit, the body was too large."""
    stream = request.stream
    if request.content_length is None and getattr(stream, "is_exhausted", False):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        raise PayloadTooLarge(
            f"The request body is larger than the {limit}-byte limit (MAX_REQUEST_BYTES)."
        )


def read_args() -> dict:
    """The arguments, from any of the accepted body kinds."""
    if request.mimetype in FORM_TYPES:
        args = {k: v[0] if len(v) == 1 else v for k, v in request.form.lists()}
        for key, storage in request.files.items():
            args[key] = storage
        refuse_cut_body()
        return args
    raw = request.get_data(cache=False)
    refuse_cut_body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
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
        message = "to: Must be the name (text, at most 100 characters) of the result's key."
        raise InvalidFields(message, fields=["to"], errors={"to": [message.split(": ", 1)[1]]})
    return to


def secret_values(blk, args) -> list[str]:
    """The secrets this call carries, to scrub from whatever it answers."""
    found = [v for k in blk.secret_keys if isinstance(v := args.get(k), str) and len(v) >= 4]
    if blk.auth == "basic" and isinstance(args.get("clientKey"), str):
        pair = f"{args.get('clientKey')}:{args.get('clientSecret')}".encode()
        found.append(base64.b64encode(pair).decode("ascii"))
    return found


def wants_stream() -> bool:
    return request.args.get("stream", "").strip().lower() in ("1", "true", "yes")


# -- running blocks ---------------------------------------------------------------


@bp.post("/blocks/<name>")
@bp.post("/api/InstaMsg/<name>")
def run_block(name):
    blk = REGISTRY.get(name)
    g.block = blk.name
    args = read_args()
    g.secrets = secret_values(blk, args)
    g.context_key = take_context_key(args)
    loaded = blk.load(args)
    state = current_app.extensions["instamsg"]
    ctx = Context(upstream=state.upstream, settings=state.settings, request_id=g.request_id)
    if blk.prepare is not None:
        loaded = blk.prepare(loaded, ctx)
    response = state.upstream.send(blk.build(loaded), g.request_id)
    g.upstream_status = response.status_code
    if blk.streamable and wants_stream():
        return stream(response, loaded["filename"])
    result = blk.result(response, loaded, ctx)
    g.code = "SUCCESS"
    return json_response(envelope("success", result))


def stream(upstream, filename) -> Response:
    """The upstream's bytes, passed through as they arrive."""

    def chunks():
        with upstream:
            yield from upstream.iter_content(CHUNK)

    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
    }
    length = upstream.headers.get("Content-Length")
    if length and length.isdigit():
        headers["Content-Length"] = length
    kind = upstream.headers.get("Content-Type") or "application/octet-stream"
    g.code = "SUCCESS"
    return Response(
        chunks(), status=200, headers=headers, content_type=kind, direct_passthrough=True
    )


# -- reading the catalogue --------------------------------------------------------


@bp.get("/blocks")
def list_blocks():
    return json_response(manifest.manifest()["blocks"])


@bp.get("/blocks/<name>")
def show_block(name):
    return json_response(manifest.block_entry(REGISTRY.get(name)))


@bp.get("/manifest.json")
@bp.get("/api/InstaMsg")
def show_manifest():
    return json_response(manifest.manifest())


@bp.get("/openapi.json")
def show_openapi():
    return json_response(manifest.openapi())


@bp.get("/healthz")
def healthz():
    return json_response({"status": "ok"})


# -- errors -----------------------------------------------------------------------


def error_response(error: ConnectorError) -> Response:
    g.code = error.code
    body = error.to_dict()
    body["request_id"] = g.get("request_id")
    payload = json.dumps(envelope("error", body), ensure_ascii=False, separators=(",", ":"))
    for secret in g.get("secrets", ()):
        payload = payload.replace(json.dumps(secret, ensure_ascii=False)[1:-1], REDACTED)
    status = 200 if request.path.startswith(RAPID_PREFIX) else error.http_status
    return Response(payload, status=status, mimetype="application/json")


def on_connector_error(error: ConnectorError):
    return error_response(error)


def on_http_exception(exc: HTTPException):
    if exc.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return error_response(
            PayloadTooLarge(
                f"The request body is larger than the {limit}-byte limit (MAX_REQUEST_BYTES)."
            )
        )
    if exc.code == 404:
        message = (
            "There is no such route. POST /blocks/<name> runs a block; GET /blocks lists them."
        )
    elif exc.code == 405:
        message = (
            f"{request.method} is not allowed here. Blocks run with POST; lists are read with GET."
        )
    else:
        message = "The request could not be read: " + (exc.description or exc.name)
    return error_response(InvalidRequest(message, http_status=exc.code))


def on_unexpected(exc: Exception):
    logs.LOGGER.error(
        "unexpected error",
        exc_info=exc,
        extra={"fields": {"request_id": g.get("request_id"), "block": g.get("block")}},
    )
    return error_response(
        InternalError(
            "The connector failed while handling this call. It was logged with the request id; "
            "please report it."
        )
    )


def install(app) -> None:
    app.register_blueprint(bp)
    app.register_error_handler(ConnectorError, on_connector_error)
    app.register_error_handler(HTTPException, on_http_exception)
    app.register_error_handler(Exception, on_unexpected)
