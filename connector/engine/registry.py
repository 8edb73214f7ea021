"""Blocks: one declaration each, and the registry that holds them.

A block is its name, HTTP method, path template, argument schema and
description; where the result needs shaping, a small function. Where each
argument goes upstream is derived from the schema:

* a field whose name is a ``{placeholder}`` of the path is a path segment;
* a field with ``into=`` goes there (``auth``, ``query``, ``body``, ``file``);
* otherwise GET and DELETE send it in the query, POST and PUT in the JSON body,
  nested in its ``group`` object if it has one.
"""

from __future__ import annotations

import base64
import difflib
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from marshmallow import ValidationError

from connector.engine.validation import validation_error
from connector.errors import UnknownBlock
from connector.upstream.client import UpstreamRequest
from connector.upstream.outcomes import json_result
from schemas.base import BlockSchema


@dataclass
class Context:
    """What a block's hooks may use while it runs."""

    upstream: Any
    settings: Any
    request_id: str | None = None
    #: says whether the caller has gone (connector.upstream.fetch.caller_gone), where a face
    #: can tell
    caller_gone: Callable[[], bool] | None = None


def default_result(response, args, ctx):
    """Most blocks answer InstaMsg's JSON body as it is."""
    return json_result(response)


@dataclass(eq=False)
class Block:
    name: str
    method: str
    path: str
    schema: type[BlockSchema]
    description: str
    #: "bearer" (access token) or "basic" (client key and secret).
    auth: str = "bearer"
    #: constant query parameters (getAccessToken's grant_type).
    query: Mapping[str, str] = field(default_factory=dict)
    #: "json" (default), "form" (an empty form body) or "multipart" (file upload).
    body: str = "json"
    #: turns the upstream response into the block's result.
    result: Callable = default_result
    #: for a multipart body (uploadFile): ``(arguments, context) -> (data, content type)``,
    #: the file part's bytes or seekable stream, found once before the call (a file URL is
    #: fetched here) and sent again whole if the call is sent again.
    file_part: Callable | None = None
    #: the block's result can be streamed raw with ?stream=1.
    streamable: bool = False
    #: safe to send again after a 429, 5xx or lost connection; None: GET, PUT and DELETE are.
    repeatable: bool | None = None
    #: a second identical call changes nothing more (MCP's idempotentHint); None: GET, PUT
    #: and DELETE do not. False for a PUT that makes something new each time (a new token).
    idempotent: bool | None = None
    #: may overwrite or remove what is there (MCP's destructiveHint); None: PUT and DELETE do.
    destructive: bool | None = None
    #: an Idempotency-Key applies (its answer is kept, the call runs once); None: every
    #: method but GET (a read repeated is harmless). getAccessToken says False: a kept token
    #: would be replayed after it expired.
    keyed: bool | None = None
    #: answers an access token for the app whose clientKey and clientSecret it was given
    #: (getAccessToken): the engine ties the token to that app for anonymous callers' keys.
    grants_token: bool = False
    #: ends the access token it is given (invalidateAccessToken): its tie to its app goes too.
    revokes_token: bool = False
    #: what the block answers under contextWrites.to: a result schema, or [Schema] for a list.
    returns: Any = None

    def __post_init__(self):
        self.method = self.method.upper()
        if self.repeatable is None:
            self.repeatable = self.method in ("GET", "PUT", "DELETE")
        if self.idempotent is None:
            self.idempotent = self.method in ("GET", "PUT", "DELETE")
        if self.keyed is None:
            self.keyed = self.method != "GET"
        if self.destructive is None:
            self.destructive = self.method in ("PUT", "DELETE")
        self.loader = self.schema()
        placeholders = {name for _, name, _, _ in string.Formatter().parse(self.path) if name}
        self.routes: dict[str, list[str]] = {k: [] for k in ("path", "query", "body", "file")}
        self.secret_keys: list[str] = []
        for name, fld in self.loader.fields.items():
            into = fld.metadata.get("into")
            if fld.metadata.get("secret"):
                self.secret_keys.append(fld.data_key or name)
            if into == "auth" or into == "local":
                continue
            if name in placeholders:
                place = "path"
            elif into:
                place = into
            else:
                place = "query" if self.method in ("GET", "DELETE") else "body"
            self.routes[place].append(name)
        #: (argument name, field) of each secret argument
        self.secret_fields = [(key, fld) for key, fld in self.args if key in self.secret_keys]
        #: the argument names, and the same by lower case (for warnings' case hints)
        self.arg_names = frozenset(key for key, _ in self.args)
        self.arg_names_folded = {key.lower(): key for key in self.arg_names}
        missing = placeholders - set(self.routes["path"])
        if missing:
            raise ValueError(f"block {self.name}: path names {missing} are not arguments")

    @property
    def read_only(self) -> bool:
        """The block only reads (a GET): nothing in InstaMsg changes, whatever it answers."""
        return self.method == "GET"

    # -- arguments -----------------------------------------------------------

    @property
    def args(self):
        """(argument name, field) pairs in declaration order."""
        return [(f.data_key or name, f) for name, f in self.loader.fields.items()]

    def load(self, args: Mapping) -> dict:
        """Validate and convert the caller's arguments, or raise the documented error."""
        try:
            return self.loader.load(args)
        except ValidationError as exc:
            raise validation_error(exc.messages, args, self) from None

    # -- the upstream request ------------------------------------------------

    def build(self, args: dict, file_part: tuple | None = None) -> UpstreamRequest:
        """The request to InstaMsg for loaded ``args`` (and, for a multipart body, the
        ``(data, content type)`` that ``file_part`` found)."""
        fields = self.loader.fields
        path = self.path.format(**{n: quote(str(args[n]), safe="") for n in self.routes["path"]})
        params = dict(self.query)
        for name in self.routes["query"]:
            if name in args:
                params[name] = query_value(args[name])
        request = UpstreamRequest(
            self.method, path, repeatable=self.repeatable, params=params, block=self.name
        )
        if self.auth == "basic":
            pair = f"{args['client_key']}:{args['client_secret']}".encode()
            request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            request.headers["Authorization"] = "Bearer " + args["access_token"]
        if self.body == "form":
            request.headers["Content-Type"] = "application/x-www-form-urlencoded"
            request.data = b""
        elif self.body == "json" and self.method in ("POST", "PUT"):
            body: dict = {}
            for name in self.routes["body"]:
                if name in args:
                    fld = fields[name]
                    target = body
                    group = fld.metadata.get("group")
                    if group:
                        target = body.setdefault(group, {})
                    target[name] = fld.to_wire(args[name])
            request.json = body
        elif self.body == "multipart":
            data, content_type = file_part
            request.file = ("uploadedfile", args["filename"], content_type, data)
        request.stream = self.streamable
        return request


def query_value(value):
    """A query parameter as InstaMsg reads it: booleans as 1 and 0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return value


class Registry:
    """All blocks by name. A second block with a taken name fails at import."""

    def __init__(self):
        self._blocks: dict[str, Block] = {}

    def add(self, blk: Block) -> Block:
        if blk.name in self._blocks:
            raise ValueError(f"block {blk.name!r} is declared twice")
        self._blocks[blk.name] = blk
        return blk

    def __iter__(self):
        return iter(self._blocks.values())

    def __len__(self):
        return len(self._blocks)

    def names(self) -> list[str]:
        return list(self._blocks)

    def get(self, name: str, listed_by: str | None = None) -> Block:
        """The block called ``name`` (``InstaMsg.name`` too), or UNKNOWN_BLOCK; its message
        names the closest blocks, and ``listed_by``, where the caller's face lists them all."""
        key = name.removeprefix("InstaMsg.")
        blk = self._blocks.get(key)
        if blk is not None:
            return blk
        folded = {n.lower(): n for n in self._blocks}
        close = difflib.get_close_matches(key.lower(), folded, n=3, cutoff=0.6)
        suggestions = [folded[c] for c in close]
        message = f"There is no block named {key[:80]!r}."
        if suggestions:
            message += " Did you mean: " + ", ".join(suggestions) + "?"
        if listed_by:
            message += f" {listed_by} lists them all."
        raise UnknownBlock(message)


REGISTRY = Registry()


def block(name, method, path, schema, description, **options) -> Block:
    """Declare a block and add it to the registry."""
    return REGISTRY.add(Block(name, method, path, schema, description, **options))
