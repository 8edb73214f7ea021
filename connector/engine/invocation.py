"""One run of a block, from the moment a face receives it to its log line."""

from __future__ import annotations

import os
import re
import time

#: A request id a caller may give (X-Request-Id); any other is replaced by a new one.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


#: Where each face lists every block, for a caller who named one that does not exist.
LISTED_BY = {
    "blocks": "GET /blocks",
    "rapid": "GET /blocks",
    "cli": "`flask --app app blocks list`",
    "mcp": "tools/list",
}


#: Where a face takes an Idempotency-Key other than the HTTP header: its refusal names it.
KEY_ARGUMENT = {"cli": "--idempotency-key", "mcp": "idempotencyKey"}
#: Where a face takes the connector's API key other than the X-API-Key header.
API_KEY_ARGUMENT = {
    "cli": "--api-key (or CONNECTOR_API_KEY)",
    "mcp": "the MCP server's --api-key (or CONNECTOR_API_KEY)",
}


class Invocation:
    """What one run of a block carries: who asked (its request id and face), what ran, what
    InstaMsg answered, the secrets to keep out of the answer and the key it holds.

    A face makes one per call and passes it to the engine, which fills it in; the face reads
    it afterwards for its log line and metrics. Kept as one object with slots: per-request
    attribute look-ups added up (bench/README.md)."""

    __slots__ = (
        "started",
        "request_id",
        "face",
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

    def __init__(self, request_id: str | None = None, face: str = "blocks"):
        self.started = time.perf_counter()
        self.request_id = request_id or os.urandom(16).hex()
        #: "blocks", "rapid" (/api/InstaMsg, always 200), "cli", "mcp" or "samples"
        self.face = face
        self.block = self.code = self.upstream_status = self.claim = None
        self.context_key = "to"
        self.secrets: list[str] = []
        self.warnings: list[str] = []
        self.ignored: list[str] = []
        self.counted = False
        self.nothing_sent = False
        #: a keyed call's SendWatch: whether its block's call may have reached InstaMsg
        self.watch = None
        #: who this caller is, as the face checked it (rate limits count under it)
        self.identity: str | None = None

    @property
    def listed_by(self) -> str | None:
        """How this call's face lists the blocks (UNKNOWN_BLOCK's hint)."""
        return LISTED_BY.get(self.face)

    @property
    def key_argument(self) -> str | None:
        """What this call's face calls an Idempotency-Key, where not the HTTP header."""
        return KEY_ARGUMENT.get(self.face)

    @property
    def api_key_argument(self) -> str | None:
        """How this call's face takes the connector's API key, where not the HTTP header."""
        return API_KEY_ARGUMENT.get(self.face)

    @property
    def rapid(self) -> bool:
        """The RapidAPI-compatible face, whose answers are always HTTP 200."""
        return self.face == "rapid"
