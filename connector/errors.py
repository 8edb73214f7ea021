"""The connector's errors: one class per documented ``status_code``.

Every failure a caller can see is one of these; the engine turns it into
the error envelope. Messages say what to do next and never carry a secret.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error the connector answers with."""

    code = "INTERNAL_PACKAGE_ERROR"
    http_status = 500
    #: what the code means, in a few words, for the generated documents
    summary = "the connector failed (a bug, logged with the request id)"
    retryable = False
    #: InstaMsg certainly never got the call (no connection was made): an Idempotency-Key
    #: is freed for a retry rather than keep this answer.
    nothing_sent = False

    def __init__(
        self,
        message,
        *,
        fields=None,
        errors=None,
        upstream=None,
        http_status=None,
        retryable=None,
        retry_after_s=None,
        headers=(),
        nothing_sent=None,
        fault=None,
    ):
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.errors = errors
        self.upstream = upstream
        if http_status is not None:
            self.http_status = http_status
        if retryable is not None:
            self.retryable = retryable
        self.retry_after_s = retry_after_s
        #: extra response headers (Allow on a 405, Idempotent-Replayed on a kept outcome)
        self.headers: list = list(headers)
        if nothing_sent is not None:
            self.nothing_sent = nothing_sent
        #: what failed, by kind (a store's fault, for /readyz), never its text
        self.fault = fault

    def to_dict(self) -> dict:
        body = {"status_code": self.code, "status_msg": self.message, "retryable": self.retryable}
        if self.retry_after_s is not None:
            body["retry_after_s"] = self.retry_after_s
        if self.fields:
            body["fields"] = list(self.fields)
        if self.errors:
            body["errors"] = self.errors
        if self.upstream is not None:
            body["upstream"] = self.upstream
        return body


class RequiredFields(ConnectorError):
    code, http_status = "REQUIRED_FIELDS", 422
    summary = "required arguments are missing"


class InvalidFields(ConnectorError):
    code, http_status = "INVALID_FIELDS", 422
    summary = "an argument has a value the block does not accept"


class InvalidRequest(ConnectorError):
    code, http_status = "INVALID_REQUEST", 400
    summary = (
        "the body is not JSON, form or multipart (415 for another content type), or not an "
        "object, or carries too many arguments"
    )
    #: the other statuses a block call answers it with (documents read them)
    also_answers = (415,)


class UnknownBlock(ConnectorError):
    code, http_status = "UNKNOWN_BLOCK", 404
    summary = "there is no block of that name"


class PayloadTooLarge(ConnectorError):
    code, http_status = "PAYLOAD_TOO_LARGE", 413
    summary = "the body, or a file, is over its limit"


class ApiError(ConnectorError):
    """InstaMsg answered with an error; ``http_status`` is its 4xx, or 502 for a 5xx."""

    code, http_status = "API_ERROR", 502
    summary = "InstaMsg refused or failed the call; its status and answer are under upstream"


class UpstreamTimeout(ConnectorError):
    code, http_status = "UPSTREAM_TIMEOUT", 504
    summary = "InstaMsg did not answer in time"
    retryable = True


class UpstreamUnavailable(ConnectorError):
    code, http_status = "UPSTREAM_UNAVAILABLE", 502
    summary = "InstaMsg could not be reached, or the connection broke"
    retryable = True


class AnswerTooLarge(UpstreamUnavailable):
    """InstaMsg's answer ran past the connector's cap on what it reads (upstream/bounds.py). Its
    own kind so that a reader of a time range (the event watcher) can ask for a narrower one."""

    retryable = False


class Unauthorized(ConnectorError):
    code, http_status = "UNAUTHORIZED", 401
    summary = "no valid X-API-Key was sent"

    @classmethod
    def api_key_needed(
        cls, proxy_secret: bool = False, given_as: str | None = None
    ) -> Unauthorized:
        """The refusal of a call without a valid key: ``given_as`` is how the caller's face
        takes one (the X-API-Key header unless it says otherwise)."""
        if given_as is not None:
            return cls(f"This connector needs an API key: give one of its keys as {given_as}.")
        return cls(
            "This connector needs an API key: send it in the X-API-Key header"
            + (" (or X-RapidAPI-Proxy-Secret on /api/InstaMsg)." if proxy_secret else ".")
        )


class IdempotencyKeyReused(ConnectorError):
    code, http_status = "IDEMPOTENCY_KEY_REUSED", 422
    summary = "the Idempotency-Key was used for another call"


class IdempotencyKeyInUse(ConnectorError):
    code, http_status = "IDEMPOTENCY_KEY_IN_USE", 409
    summary = "the first call with this Idempotency-Key still runs"
    retryable = True


class IdempotencyUnavailable(ConnectorError):
    """The idempotency store (Redis, or the SQLite file) cannot be read or written: nothing
    was sent."""

    code, http_status = "IDEMPOTENCY_UNAVAILABLE", 503
    summary = "the Idempotency-Key store cannot be read or written; nothing was sent"
    retryable = True
    nothing_sent = True


class OutcomeUnknown(ConnectorError):
    """A keyed call may or may not have reached InstaMsg (interrupted after sending): its
    key keeps this answer for every retry and is never run again. Check, then use a new key."""

    code, http_status = "OUTCOME_UNKNOWN", 502
    summary = "a call with this Idempotency-Key may have run; check, then use a new key"
    retryable = False


class RateLimited(ConnectorError):
    """This caller ran more blocks than RATE_LIMIT allows; nothing was sent."""

    code, http_status = "RATE_LIMITED", 429
    summary = "this caller ran more blocks than RATE_LIMIT allows; nothing was sent"
    retryable = True


class InternalError(ConnectorError):
    code, http_status = "INTERNAL_PACKAGE_ERROR", 500

    @classmethod
    def bug(cls) -> InternalError:
        """The answer to a bug (logged by type and place, never its text), on every face."""
        return cls(
            "The connector failed while handling this call. It was logged with the request "
            "id; please report it."
        )


#: Every documented error code, for the README's table and the tests.
ALL = (
    RequiredFields,
    InvalidFields,
    InvalidRequest,
    UnknownBlock,
    PayloadTooLarge,
    ApiError,
    UpstreamTimeout,
    UpstreamUnavailable,
    Unauthorized,
    IdempotencyKeyReused,
    IdempotencyKeyInUse,
    IdempotencyUnavailable,
    OutcomeUnknown,
    RateLimited,
    InternalError,
)
