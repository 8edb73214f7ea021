"""What each outcome of an upstream call means for the caller, decided in one place: the
exceptions of the way there, InstaMsg's error statuses and bodies, and its success bodies."""

from __future__ import annotations

import contextlib
import json
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from connector import jsonx
from connector.errors import ApiError, ConnectorError, UpstreamTimeout, UpstreamUnavailable
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


def answer_too_large(status: int) -> UpstreamUnavailable:
    """The error for an answer longer than ANSWER_LIMIT: InstaMsg answered, so the call may
    have taken effect, and what it said is unknown. Not retried (it would be as long again);
    a keyed call settles as OUTCOME_UNKNOWN."""
    return UpstreamUnavailable(
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


# What an upstream error status means, and what the caller can do about it.
STATUS_HINTS = {
    400: "InstaMsg refused the request as invalid",
    401: "InstaMsg refused the credentials: check clientKey and clientSecret, "
    "or get a fresh access token with getAccessToken",
    403: "InstaMsg does not allow this (a permission, quota or topic rule)",
    404: "InstaMsg has no such resource: check the IDs and the filename",
    405: "InstaMsg does not allow this method here",
    409: "InstaMsg refused the request because it conflicts with the current state",
    413: "InstaMsg refused the request as too large",
    422: "InstaMsg refused the request's values",
    429: "InstaMsg is limiting the request rate: wait and try again",
}


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
    if status in STATUS_HINTS:
        hint = STATUS_HINTS[status]
    elif status >= 500:
        hint = "InstaMsg failed to handle the request; try again later"
    elif status < 400:
        hint = "InstaMsg answered with an unexpected redirect"
    else:
        hint = "InstaMsg refused the request"
    said = upstream_message(body)
    message = f"{hint} (HTTP {status})" + (f"{SAID}{said}" if said else ".")
    http_status = status if 400 <= status < 500 else 502
    return ApiError(
        message,
        upstream={"status": status, "body": body},
        http_status=http_status,
        retryable=status in RETRY_STATUSES or status >= 500,
        retry_after_s=retry_after(response.headers.get("Retry-After")),
    )


#: Upstream statuses that a repeatable call is sent again for.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


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
