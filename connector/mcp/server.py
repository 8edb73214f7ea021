"""The MCP server: the official SDK's low-level ``Server`` with one tool per block.

The low-level server is used rather than the SDK's decorator-based ``MCPServer``: that one
builds a pydantic model from each Python function and validates a call's arguments against
it, so an agent would see pydantic's messages. Here nothing checks the arguments before the
connector does (the SDK's low-level server validates only the request's envelope), and an
agent sees the same REQUIRED_FIELDS or INVALID_FIELDS, with the same message and fields,
as an HTTP caller.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import anyio
import anyio.to_thread
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    CallToolRequestParams,
    CallToolResult,
    ErrorData,
    JSONRPCError,
    ListResourcesResult,
    ListToolsResult,
    ReadResourceRequestParams,
    ReadResourceResult,
)

from connector import __version__, logs
from connector.engine import Engine, Invocation
from connector.engine import idempotency_keys as keys
from connector.engine.arguments import with_app_credentials
from connector.engine.invocation import LISTED_BY
from connector.engine.registry import REGISTRY
from connector.errors import ConnectorError, InternalError, UnknownBlock
from connector.mcp import resources, tools

#: A runner: a block's name, arguments and Idempotency-Key (or None) in; the connector's
#: envelope out, and whether it replays the answer the key already held.
Runner = Callable[[str, dict, str | None], tuple[dict, bool]]
NAME = "instamsg-connector"


def build_server(
    run: Runner, credentials: dict | None = None, caller_of: Callable | None = None
) -> Server:
    """An MCP server whose tools are the blocks, each call run by ``run`` (in a worker
    thread: a block may wait on InstaMsg, and the protocol must keep answering).
    ``credentials`` (clientKey and clientSecret) are the app's, held by the server for
    every call that gives none: the agent then never sees them. ``caller_of`` (over HTTP)
    finds who sent a call in its request context; ``run`` then gets it as a fourth
    argument (its key runs the block)."""
    held = bool(credentials)

    async def list_tools(ctx, params) -> ListToolsResult:
        return ListToolsResult(tools=list(tools.tool_list(held)))

    async def call_tool(ctx, params: CallToolRequestParams) -> CallToolResult:
        try:
            blk = REGISTRY.get(params.name, LISTED_BY["mcp"])
        except UnknownBlock as error:
            # A tool that does not exist is a protocol error (the spec's INVALID_PARAMS),
            # with the connector's did-you-mean sentence.
            raise MCPError(INVALID_PARAMS, error.message) from None
        if blk.name != params.name:  # "InstaMsg.getTenants": the tool's name is the block's
            raise MCPError(
                INVALID_PARAMS,
                f"There is no tool named {params.name[:80]!r}. Did you mean: {blk.name}?",
            )
        if tools.token_block(blk, held):
            raise MCPError(
                INVALID_PARAMS,
                f"{blk.name} is not offered: this server holds the app's credentials, and the "
                "connector gets and renews access tokens itself. Call the other tools without "
                "accessToken.",
            )
        args = with_app_credentials(dict(params.arguments or {}), credentials)
        key = args.pop(tools.KEY_ARGUMENT, None)
        if key is not None:
            # Checked here, in the argument's own name: over --url the connector would
            # speak of its HTTP header.
            inv = Invocation(face="mcp")
            try:
                keys.check_form(key, inv.key_argument)
            except ConnectorError as error:
                return tools.tool_result(Engine.failed(inv, error).envelope)
        who = () if caller_of is None else (caller_of(ctx),)
        try:
            envelope, replayed = await anyio.to_thread.run_sync(
                functools.partial(run, blk.name, args, key, *who)
            )
            return tools.tool_result(envelope, blk.name, replayed=replayed)
        except Exception as exc:  # noqa: BLE001  (a bug here must not end the session)
            inv = Invocation(face="mcp")
            logs.LOGGER.error(
                "mcp tool call failed",
                exc_info=exc,
                extra={"fields": {"request_id": inv.request_id, "block": blk.name}},
            )
            return tools.tool_result(Engine.failed(inv, InternalError.bug()).envelope)

    async def list_resources(ctx, params) -> ListResourcesResult:
        return ListResourcesResult(resources=resources.listed())

    async def read_resource(ctx, params: ReadResourceRequestParams) -> ReadResourceResult:
        found = await anyio.to_thread.run_sync(resources.read, params.uri)
        if found is None:
            names = ", ".join(d.uri for d in resources.DOCUMENTS)
            raise MCPError(
                INVALID_PARAMS, f"There is no resource {params.uri[:120]!r}: there are {names}."
            )
        return ReadResourceResult(contents=[found])

    return Server(
        NAME,
        version=__version__,
        title="InstaMsg connector",
        instructions=tools.HELD_INSTRUCTIONS if held else tools.INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


async def serve(server: Server) -> None:
    async with stdio_server() as (read_stream, write_stream):
        lines = AnsweringUnreadable(read_stream, write_stream)
        await server.run(lines, write_stream, server.create_initialization_options())


class AnsweringUnreadable:
    """The messages read from stdin, as the SDK's stdio transport hands them on; a line that is
    not a JSON-RPC message is answered, as JSON-RPC 2.0 asks, with -32700 (not JSON) or -32600
    (JSON, but no message) and ``"id": null``. (The SDK's server only logs such a line at
    debug level, and a client would wait for an answer that never comes.)"""

    def __init__(self, read_stream, write_stream):
        self._read = read_stream
        self._write = write_stream

    async def receive(self):
        while isinstance(item := await self._read.receive(), Exception):
            await self._write.send(SessionMessage(unreadable(item)))
        return item

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    @property
    def last_context(self):  # the context the SDK runs a handler in: the transport's
        return getattr(self._read, "last_context", None)

    async def aclose(self) -> None:
        await self._read.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        await self.aclose()


def unreadable(error: Exception) -> JSONRPCError:
    """The answer to a line the transport could not read: its validation error (pydantic's,
    read through its ``errors()``) says whether the line was JSON at all."""
    errors = getattr(error, "errors", None)
    kinds = {e["type"] for e in errors()} if callable(errors) else set()
    if "json_invalid" in kinds:
        code, message = PARSE_ERROR, "The line is not JSON: send one JSON-RPC message a line."
    else:
        code, message = INVALID_REQUEST, "The line is JSON but not a JSON-RPC 2.0 message."
    return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=code, message=message))


def serve_stdio(run: Runner, where: str, credentials: dict | None = None) -> None:
    """Serve MCP on stdin and stdout until the client closes stdin. stdout carries the
    protocol only: the connector's log lines go to stderr (connector/logs.py writes to fd
    2), and while it serves the SDK points fd 1 at stderr, so a stray print cannot break a
    frame."""
    logs.setup()
    # The SDK's own loggers, quiet unless something goes wrong; Python's last-resort
    # handler writes those to stderr.
    logging.getLogger("mcp").setLevel(logging.WARNING)
    tools.tool_list(bool(credentials))  # built now, so tools/list answers at once
    logs.event(
        "MCP server on stdio",
        blocks=len(REGISTRY),
        runs=where,
        credentials="held by the server" if credentials else "given by the agent",
    )
    anyio.run(serve, build_server(run, credentials))
