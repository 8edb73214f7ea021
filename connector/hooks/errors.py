"""What a hook's sender or creator is told, beside the connector's own error codes: no such
hook, and each way a signature can fail. A refusal says what was wrong (a header missing, a
signature that does not match, a timestamp too far off), never anything about the secret."""

from __future__ import annotations

from connector.errors import ConnectorError


class HookNotFound(ConnectorError):
    """No hook has this id, or its URL token is wrong: the two answer alike, so that a
    guess tells nothing."""

    code, http_status = "HOOK_NOT_FOUND", 404
    summary = "there is no hook at this URL"

    @classmethod
    def at_url(cls) -> HookNotFound:
        return cls("There is no hook at this URL. GET /hooks lists the hooks (with an API key).")


class SignatureMissing(ConnectorError):
    code, http_status = "SIGNATURE_MISSING", 401
    summary = "the delivery lacks a header its hook's scheme signs with"


class SignatureInvalid(ConnectorError):
    code, http_status = "SIGNATURE_INVALID", 401
    summary = "the delivery's signature does not match its body under the hook's secret"


class SignatureStale(ConnectorError):
    code, http_status = "SIGNATURE_STALE", 401
    summary = "the delivery's signed timestamp is too far from now"


#: The hook codes, for the README's table and the tests.
ALL = (HookNotFound, SignatureMissing, SignatureInvalid, SignatureStale)
