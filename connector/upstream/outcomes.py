"""What each outcome of an upstream call means for the caller, decided in one place: the
exceptions of the way there, InstaMsg's error statuses and bodies, and its success bodies."""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import requests
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from connector import jsonx
from connector.errors import (
    AnswerTooLarge,
    ApiError,
    ConnectorError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from connector.upstream.bounds import ANSWER_LIMIT, MIB, MIN_PIECE

#: How much of an upstream error body an envelope keeps: characters of its text, or of its
#: JSON written out.
BODY_LIMIT = 4096
#: How much of InstaMsg's own sentence an error's status_msg repeats, in characters.
SAID_LIMIT = 300
#: Where status_msg starts repeating InstaMsg's sentence.
SAID = ". InstaMsg said: "

#: What a caller may do after a call whose outcome is unknown.
CHECK_FIRST = (
    "A read, update or delete is safe to call again; "
    "a create or publish may have taken effect, so check before you repeat it."
)
TIMED_OUT = "InstaMsg did not answer in time. " + CHECK_FIRST


NOT_RETRIED = {"retryable": False}

# What went wrong on the way, most specific first: requests' exceptions inherit from each
# other (SSLError and ConnectTimeout are ConnectionErrors too), so order decides.
EXCEPTION_TABLE: tuple[tuple[type[BaseException], type[ConnectorError], str, dict], ...] = (
    (
        requests.exceptions.ConnectTimeout,
        UpstreamUnavailable,
        "InstaMsg could not be reached in time (no connection was made, so nothing was sent). "
        "Try again shortly; if it persists, check INSTAMSG_API_URL.",
        {},
    ),
    (
        requests.exceptions.Timeout,
        UpstreamTimeout,
        TIMED_OUT,
        {},
    ),
    (
        # A certificate or handshake failure will fail the same way again: never retried.
        requests.exceptions.SSLError,
        UpstreamUnavailable,
        "No secure connection to InstaMsg could be made (TLS failed). "
        "Check INSTAMSG_API_URL and the server's certificate.",
        NOT_RETRIED,
    ),
    (
        requests.exceptions.ProxyError,
        UpstreamUnavailable,
        "The proxy in HTTPS_PROXY / HTTP_PROXY refused or failed the connection to InstaMsg. "
        "Check the proxy settings.",
        {},
    ),
    (
        # The connection broke after the request went out (reset, closed without an answer).
        ProtocolError,
        UpstreamUnavailable,
        "The connection to InstaMsg failed before a complete answer arrived. Try again.",
        {},
    ),
    (
        requests.exceptions.ConnectionError,
        UpstreamUnavailable,
        "InstaMsg could not be reached (connection refused, reset or name not resolved). "
        "Try again shortly; if it persists, check INSTAMSG_API_URL.",
        {},
    ),
    (
        requests.exceptions.RequestException,
        UpstreamUnavailable,
        "The connection to InstaMsg failed before a complete answer arrived. Try again.",
        {},
    ),
    (
        # A read timeout in the middle of a body: requests hands it on as a ConnectionError,
        # but the request had gone out.
        ReadTimeoutError,
        UpstreamTimeout,
        TIMED_OUT,
        {},
    ),
    (
        TimeoutError,
        UpstreamTimeout,
        TIMED_OUT,
        {},
    ),
    (
        OSError,
        UpstreamUnavailable,
        "The connection to InstaMsg failed before a complete answer arrived. Try again.",
        {},
    ),
)
TRANSPORT_ERRORS = tuple(
    kind for kind, _, _, _ in EXCEPTION_TABLE if kind not in (ProtocolError, ReadTimeoutError)
)


def exception_error(exc: BaseException) -> ConnectorError:
    """The error for a failed exchange. The exception's own text is never used:
    it can hold the URL, and a URL can hold a token."""
    if isinstance(exc, requests.ConnectionError) and exc.args:
        cause = exc.args[0]
        if isinstance(cause, (ProtocolError, ReadTimeoutError)):  # requests wraps urllib3's
            exc = cause
    for kind, error, message, options in EXCEPTION_TABLE:
        if isinstance(exc, kind):
            # A connection never made (refused, connect timeout, TLS, proxy) sent nothing;
            # one that broke after sending (a ProtocolError, unwrapped above) may have.
            never_made = isinstance(exc, requests.ConnectionError)
            return error(message, nothing_sent=never_made, **options)
    return UpstreamUnavailable(EXCEPTION_TABLE[-1][2])


def past_deadline(deadline: float) -> UpstreamTimeout:
    """The error for a call INSTAMSG_DEADLINE cut short, whatever InstaMsg was doing."""
    return UpstreamTimeout(
        f"InstaMsg had not answered within INSTAMSG_DEADLINE ({deadline:g} s), so the "
        "connector stopped waiting. " + CHECK_FIRST
    )


def answer_too_large(status: int) -> AnswerTooLarge:
    """The error for an answer longer than ANSWER_LIMIT: InstaMsg answered, so the call may
    have taken effect, and what it said is unknown. Not retried (it would be as long again);
    a keyed call settles as OUTCOME_UNKNOWN."""
    return AnswerTooLarge(
        f"InstaMsg's answer (HTTP {status}) was larger than {ANSWER_LIMIT // MIB} MiB (or came "
        f"in more than {ANSWER_LIMIT // MIN_PIECE:,} pieces), more than any block's answer can "
        "be, so the connector stopped reading it. " + CHECK_FIRST,
        upstream={"status": status, "body": None},
        retryable=False,
    )


def answer_json(raw: bytes, status: int) -> Any:
    """An answer's body parsed once: ValueError when it is not JSON; an answer that nests
    deeper than jsonx.MAX_DEPTH is an ApiError (502) on every path, success or error."""
    try:
        return jsonx.loads_bounded(raw)
    except jsonx.TooDeep:
        raise ApiError(
            f"InstaMsg's answer (HTTP {status}) is JSON nested more than {jsonx.MAX_DEPTH} "
            "levels deep, deeper than the connector passes on, so it was not used. " + CHECK_FIRST,
            upstream={"status": status, "body": None},
        ) from None


@dataclass(frozen=True)
class StatusRule:
    """What an InstaMsg answer's status says about the call, decided once for every reader:
    the upstream client (did it reach InstaMsg?), the retry policy (send it again?), the
    Idempotency-Key rules (keep the answer?) and the managed tokens (renew?)."""

    #: what the caller is told, in words
    hint: str
    #: InstaMsg did what was asked (a 2xx): the block's result
    succeeded: bool = False
    #: InstaMsg said it ran nothing: a keyed call's key is freed for a retry
    ran_nothing: bool = False
    #: the answer is a definite outcome an Idempotency-Key keeps and replays (else: unknown)
    definite: bool = True
    #: a repeatable call is sent again (after Retry-After or a backoff)
    resend: bool = False
    #: the caller is told it may try again
    retryable: bool = False
    #: the access token was refused: a managed one is renewed and the call sent once more
    renew_token: bool = False


S = HTTPStatus
SERVER_FAILED = "InstaMsg failed to handle the request; try again later"
#: InstaMsg's statuses, by what they mean; ``status_rule`` falls back by class.
STATUS_RULES: dict[int, StatusRule] = {
    S.BAD_REQUEST: StatusRule("InstaMsg refused the request as invalid"),
    S.UNAUTHORIZED: StatusRule(
        "InstaMsg refused the credentials: check clientKey and clientSecret, "
        "or get a fresh access token with getAccessToken",
        ran_nothing=True,
        renew_token=True,
    ),
    S.FORBIDDEN: StatusRule("InstaMsg does not allow this (a permission, quota or topic rule)"),
    S.NOT_FOUND: StatusRule("InstaMsg has no such resource: check the IDs and the filename"),
    S.METHOD_NOT_ALLOWED: StatusRule("InstaMsg does not allow this method here"),
    S.CONFLICT: StatusRule(
        "InstaMsg refused the request because it conflicts with the current state"
    ),
    S.REQUEST_ENTITY_TOO_LARGE: StatusRule("InstaMsg refused the request as too large"),
    S.UNPROCESSABLE_ENTITY: StatusRule("InstaMsg refused the request's values"),
    S.TOO_MANY_REQUESTS: StatusRule(
        "InstaMsg is limiting the request rate: wait and try again",
        ran_nothing=True,
        resend=True,
        retryable=True,
    ),
    **{
        status: StatusRule(SERVER_FAILED, definite=False, resend=True, retryable=True)
        for status in (S.BAD_GATEWAY, S.SERVICE_UNAVAILABLE, S.GATEWAY_TIMEOUT)
    },
}


def status_rule(status: int) -> StatusRule:
    """The rule for ``status``: its own, else its class's (a success; any other refusal; any
    other failure, which may have acted and is not sent again; a redirect)."""
    rule = STATUS_RULES.get(status)
    if rule is not None:
        return rule
    if 200 <= status < 300:
        return SUCCEEDED
    if 400 <= status < 500:
        return REFUSED
    if status >= 500:
        return FAILED
    return REDIRECTED


SUCCEEDED = StatusRule("InstaMsg did it", succeeded=True)
REFUSED = StatusRule("InstaMsg refused the request")
FAILED = StatusRule(SERVER_FAILED, definite=False, retryable=True)
REDIRECTED = StatusRule("InstaMsg answered with an unexpected redirect")


def parse_body(response, as_json=True) -> Any:
    """An upstream error body as JSON if it is JSON (``as_json``: not already known not to
    be), else text: whole, for the engine to scrub of secrets before ``cut_to_limits`` cuts
    it (the answer's size is bounded as it is read: connector.upstream.bounds)."""
    raw = response.content or b""
    if not raw.strip():
        return None
    if as_json:
        with contextlib.suppress(ValueError):
            return answer_json(raw, response.status_code)
    return raw.decode("utf-8", "replace")


_TAG = re.compile(r"<[^>]*>")
_TITLE_OPEN = re.compile(r"(?i)<title")
_TITLE_CLOSE = re.compile(r"(?i)</title>")


def page_title(text: str) -> str | None:
    """What a page's first <title> holds, or None. Found by plain searches, each reading on
    from where the last stopped: a pattern such as ``<title[^>]*>(.*?)</title>`` starts over
    at every ``<title`` without an end, which over a whole body is quadratic."""
    opened = _TITLE_OPEN.search(text)
    start = text.find(">", opened.end()) if opened else -1
    closed = _TITLE_CLOSE.search(text, start + 1) if start >= 0 else None
    return text[start + 1 : closed.start()] if closed else None


def without_tags(text: str) -> str:
    """``text`` with its tags as spaces. Only up to the last ``>``: a ``<`` after it opens no
    tag, and the pattern would read to the end from each one (quadratic)."""
    last = text.rfind(">")
    return _TAG.sub(" ", text[: last + 1]) + text[last + 1 :]


def upstream_message(body) -> str | None:
    """The sentence an upstream error body says, wherever it keeps it (whole: it is cut
    to SAID_LIMIT only once scrubbed)."""
    if isinstance(body, dict):
        for key in ("message", "error_description", "detail", "error", "msg", "status_msg"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None
    if isinstance(body, str):
        title = page_title(body)
        text = title if title is not None else without_tags(body)
        return " ".join(text.split()) or None
    return None


def cut_to_limits(error: dict) -> dict:
    """An error envelope's upstream words cut to their limits: InstaMsg's sentence in
    ``status_msg`` to SAID_LIMIT, ``upstream.body`` to BODY_LIMIT. Only for words already
    scrubbed of secrets (``Engine.error_envelope`` scrubs, then calls this): a cut made
    first can split a secret and leave a piece that no longer reads as the secret."""
    upstream = error.get("upstream")
    if not isinstance(upstream, dict) or "body" not in upstream:
        return error
    head, mark, said = error["status_msg"].partition(SAID)
    if mark:
        error["status_msg"] = head + mark + said[:SAID_LIMIT]
    body = upstream.get("body")
    if isinstance(body, (dict, list)) and len(text := json.dumps(body)) > BODY_LIMIT:
        body = text[:BODY_LIMIT]
    elif isinstance(body, str):
        body = body[:BODY_LIMIT]
    error["upstream"] = {**upstream, "body": body}  # a copy: the error's own stays whole
    return error


def response_error(response) -> ApiError:
    """The error for an upstream answer that is not a success, with InstaMsg's words whole
    (see ``cut_to_limits``)."""
    status = response.status_code
    body = parse_body(response)
    rule = status_rule(status)
    said = upstream_message(body)
    message = f"{rule.hint} (HTTP {status})" + (f"{SAID}{said}" if said else ".")
    http_status = status if 400 <= status < 500 else 502
    return ApiError(
        message,
        upstream={"status": status, "body": body},
        http_status=http_status,
        retryable=rule.retryable,
        retry_after_s=retry_after(response.headers.get("Retry-After")),
    )


def retry_after(value) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, round(moment.timestamp() - time.time(), 3))


def json_result(response) -> Any:
    """A success body as JSON; an empty one is ``{"success": true}``."""
    raw = response.content
    if not raw or not raw.strip():
        return {"success": True}
    try:
        return answer_json(raw, response.status_code)
    except ValueError:
        raise ApiError(
            "InstaMsg answered with a success status but a body that is not JSON.",
            upstream={"status": response.status_code, "body": parse_body(response, False)},
        ) from None
