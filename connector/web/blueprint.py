"""The connector's HTTP face, on Flask: request -> arguments -> the engine -> envelope.

One Blueprint holds every route. ``POST /blocks/<name>`` answers with meaningful HTTP
statuses; ``POST /api/InstaMsg/<name>`` is the RapidAPI-compatible twin that always
answers 200 (the envelope's ``callback`` says what happened). Every error leaves through
the error handlers of connector/web/envelope.py. The engine answers a block call whole (its
Idempotency-Key settled); this face turns the answer into a response. One ``after_request``
hook adds ``X-Request-Id`` and writes the access log line.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, g, request

from connector import logs, metrics
from connector.engine import Invocation
from connector.engine.invocation import LISTED_BY, REQUEST_ID
from connector.errors import InvalidRequest
from connector.generate import manifest, openapi
from connector.hooks.service import public_path
from connector.web.auth import authenticate
from connector.web.body import read_args, stream_switch
from connector.web.caller import caller_gone
from connector.web.context import RAPID_PREFIX, current_invocation, engine, face_of
from connector.web.envelope import answer_response, json_response

#: The endpoint that runs blocks (rate limits count it alone).
BLOCK_ENDPOINT = "connector.run_block"

bp = Blueprint("connector", __name__)


# -- every request: its id, the API key, and what is written after ------------------------


@bp.before_app_request
def start_call():
    headers, path = request.headers, request.path
    given = headers.get("X-Request-Id", "")
    inv = Invocation(given if REQUEST_ID.fullmatch(given) else None, face_of(path))
    g.inv = inv
    metrics.IN_FLIGHT.inc()
    inv.counted = True
    authenticate(engine(), inv, headers, path)


@bp.after_app_request
def finish_call(response: Response) -> Response:
    inv = current_invocation()
    response.headers["X-Request-Id"] = inv.request_id
    duration = time.perf_counter() - inv.started
    if inv.block is not None or request.endpoint == BLOCK_ENDPOINT:
        metrics.count_call(inv.block or "(unknown)", inv.code or "UNKNOWN", duration)
    logs.access(
        inv.request_id,
        request.method,
        public_path(request.path)[:200],  # a hook's URL token is never logged
        response.status_code,
        duration * 1000,
        inv.block,
        inv.code,
        inv.upstream_status,
        inv.ignored,
    )
    return response


@bp.teardown_app_request
def end_call(exc=None):
    inv = current_invocation()
    if inv.counted:
        inv.counted = False
        metrics.IN_FLIGHT.dec()


# -- the routes ---------------------------------------------------------------------------


@bp.post("/blocks/<name>")
@bp.post(RAPID_PREFIX + "<name>")
def run_block(name):
    """Run one block: the engine validates, calls InstaMsg and answers; this renders it."""
    inv = current_invocation()
    running = engine()
    blk = running.find(inv, name)  # before the body: a call refused for it is still its block's
    answer = running.answer(
        inv,
        blk,
        read_args(),
        key=request.headers.get("Idempotency-Key"),
        stream=stream_switch(),
        caller_gone=caller_gone(request.environ),
    )
    return answer_response(answer)


@bp.get("/blocks/<name>")
def describe_block(name):
    """One block's manifest entry; with a query, a 405 saying blocks run with POST."""
    blk = engine().registry.get(name, LISTED_BY["blocks"])
    if request.args:
        refusal = InvalidRequest(
            f"Blocks run with POST: POST /blocks/{blk.name} with the arguments (in the body or "
            f"the query string). GET /blocks/{blk.name} without a query describes the block.",
            http_status=405,
            headers=[("Allow", "GET, HEAD, OPTIONS, POST")],
        )
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
def openapi_document():
    """The OpenAPI document, generated from the same schemas."""
    return json_response(openapi.openapi())


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
    running = engine()
    failed = running.readiness()
    store = "redis" if running.settings.redis_url else "sqlite"
    if failed:
        response = json_response({"status": "unavailable", "store": store, "failed": failed}, 503)
        response.headers["Retry-After"] = "5"
        return response
    return json_response({"status": "ready", "store": store})
