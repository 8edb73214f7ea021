"""Where a tool call's block runs: in this process, or on a deployed connector.

A runner takes a block's name, its arguments and an Idempotency-Key (or None) and answers
the connector's envelope (``{"callback": "success" | "error", "contextWrites": {...}}``),
whatever happened, and whether it is the answer the key already held (a replay): the MCP
server turns that one shape into a tool result. In process, the engine runs the block
(``Engine.call``); remote, the deployed connector's ``POST /blocks/<name>`` does. Either way
validation, managed tokens, retries and the scrubbing of secrets from errors are the
engine's, not a copy of them.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import requests

from connector.engine import Engine, Invocation
from connector.errors import ConnectorError

#: Waiting for a deployed connector: to connect, and for its answer (its own deadline,
#: INSTAMSG_DEADLINE, is 60 s by default, and retries wait within it).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 120.0


class ConnectorUnavailable(ConnectorError):
    """The one code this face adds to the connector's: the deployed connector did not answer
    with an envelope (it is down, or something in front of it answered instead)."""

    code, http_status = "CONNECTOR_UNAVAILABLE", 502
    summary = "the deployed connector did not answer"
    retryable = True


CONNECTOR_UNAVAILABLE = ConnectorUnavailable.code


def block_path(name: str) -> str:
    return "/blocks/" + quote(name, safe="")


def run_in_process(
    engine, name: str, args: dict, key: str | None = None, api_key: str | None = None
) -> tuple[dict, bool]:
    """Run block ``name`` with the engine of this process (as ``flask blocks call`` does).
    The raw bytes of downloadFile are the HTTP face's alone: a tool gets them base64."""
    answer = engine.call(
        Invocation(face="mcp"), name, dict(args), api_key=api_key, key=key, can_stream=False
    )
    return answer.envelope, answer.replayed


class Remote:
    """Runs blocks on a deployed connector at ``url`` with requests (one Session)."""

    def __init__(self, url: str, api_key: str | None = None):
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        #: The URL as messages show it: no user, password, path or query.
        self.shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self.session = requests.Session()
        # The environment's proxies and .netrc stay out: the URL is the one to call.
        self.session.trust_env = False
        if api_key:
            self.session.headers["X-API-Key"] = api_key

    def __call__(
        self, name: str, args: dict, key: str | None = None, api_key: str | None = None
    ) -> tuple[dict, bool]:
        """``api_key``: the caller's own key (over HTTP), sent instead of the server's."""
        headers = {}
        if key is not None:
            headers["Idempotency-Key"] = key
        if api_key:
            headers["X-API-Key"] = api_key
        try:
            reply = self.session.post(
                self.url + block_path(name),
                json={"args": args},
                headers=headers or None,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            )
        except requests.Timeout:
            return unavailable(
                f"The connector at {self.shown} did not answer within {READ_TIMEOUT:g} s."
            ), False
        except requests.RequestException as error:
            # The exception's class only: its text can quote the request.
            return unavailable(
                f"The connector at {self.shown} could not be reached ({type(error).__name__})."
            ), False
        try:
            envelope = reply.json()
        except ValueError:
            envelope = None
        if not is_envelope(envelope):
            return unavailable(
                f"The connector at {self.shown} answered HTTP {reply.status_code} without an "
                "envelope: is the URL the connector's base URL?"
            ), False
        return envelope, reply.headers.get("Idempotent-Replayed") == "true"

    def close(self) -> None:
        self.session.close()


def is_envelope(value) -> bool:
    return (
        isinstance(value, dict)
        and value.get("callback") in ("success", "error")
        and isinstance(value.get("contextWrites"), dict)
        and len(value["contextWrites"]) == 1
    )


def unavailable(message: str) -> dict:
    """CONNECTOR_UNAVAILABLE's envelope, made as the engine makes every error's."""
    return Engine.failed(Invocation(face="mcp"), ConnectorUnavailable(message)).envelope
