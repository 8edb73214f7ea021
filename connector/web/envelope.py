"""The engine's answers as HTTP responses: envelopes (JSON), downloadFile's passed-through
bytes, and every error that leaves Flask (one error handler per error class, registered by
``register_errors``)."""

from __future__ import annotations

from urllib.parse import quote

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from connector import jsonx, logs
from connector.engine import Answer, Engine
from connector.errors import ConnectorError, InternalError, InvalidRequest, PayloadTooLarge
from connector.web.context import current_invocation, engine

JSON = "application/json"
CHUNK = 64 * 1024


def json_response(payload, status=200) -> Response:
    """``payload`` as a JSON response (orjson)."""
    return Response(jsonx.dumps(payload), status=status, mimetype=JSON)


def stream_response(reply, filename) -> Response:
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


def answer_response(answer: Answer) -> Response:
    """The engine's answer to a call as it is: status, headers and envelope, or the bytes."""
    if answer.reply is not None:
        return stream_response(answer.reply, answer.filename)
    return Response(answer.body, status=answer.status, headers=answer.headers)


def error_response(error: ConnectorError) -> Response:
    """An error raised on the way to the engine or in it (a refused key, an unreadable body,
    no such route), answered as the engine answers every failed call."""
    return answer_response(Engine.failed(current_invocation(), error))


def http_error(error: HTTPException) -> Response:
    """Flask's own refusals (no route, wrong method, body too large) as envelopes."""
    if isinstance(error, RequestEntityTooLarge):
        limit = engine().settings.max_request_bytes
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
            headers=[("Allow", allow)],
        )
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
    inv = current_invocation()
    logs.LOGGER.error(
        "unexpected error",
        exc_info=exc,
        extra={"fields": {"request_id": inv.request_id, "block": inv.block}},
    )
    return error_response(InternalError.bug())


def register_errors(app: Flask) -> None:
    app.register_error_handler(ConnectorError, error_response)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
