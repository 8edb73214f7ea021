"""The tool list (one tool per block) and a block's envelope as a tool result."""

from __future__ import annotations

from functools import cache, lru_cache

from mcp_types import CallToolResult, TextContent, Tool, ToolAnnotations

from connector import jsonx
from connector.engine.registry import REGISTRY
from connector.generate import manifest, openapi
from connector.mcp import schema

#: What the server tells an agent when it connects (MCP's ``instructions``).
INSTRUCTIONS = (
    "Each tool is a block of the InstaMsg connector: tenants, clients (devices and users), "
    "messages, files and configuration of an InstaMsg IoT account. Authenticate each call "
    "with accessToken (from getAccessToken), or give clientKey and clientSecret instead: the "
    "connector then gets and renews the token itself. IDs come from earlier results: "
    "tenantId is createTenant's id, clientId is createClient's id. A failed call answers "
    "isError with status_code, status_msg (what to do next) and the fields at fault."
)
#: The same, when the server holds the app's credentials (INSTAMSG_CLIENT_KEY and _SECRET).
HELD_INSTRUCTIONS = INSTRUCTIONS.replace(
    "Authenticate each call with accessToken (from getAccessToken), or give clientKey and "
    "clientSecret instead: the connector then gets and renews the token itself.",
    "This server holds the app's credentials: leave accessToken, clientKey and clientSecret "
    "out, and the connector gets and renews access tokens itself.",
)


def annotations(blk) -> ToolAnnotations:
    """What the block does to InstaMsg, from its method and declaration: a GET only reads;
    PUT and DELETE overwrite or remove (destructive) and are idempotent unless the block
    says otherwise (a new token on every call); a POST adds."""
    read_only = blk.read_only
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=False if read_only else blk.destructive,
        idempotent_hint=blk.idempotent,
        open_world_hint=True,
    )


#: Phrases of the blocks' descriptions that speak of the HTTP request (a query parameter, a
#: multipart part), and what an agent is told instead: a tool cannot do either, and an agent
#: told of them looks for a way. (tests/faces/test_mcp_http.py checks each is still found.)
HTTP_ONLY = {
    " With ?stream=1 on the URL, answers the raw bytes instead.": "",
    ", as a URL to fetch (file), or as a multipart part named file.": (
        " or as an http(s) URL the connector downloads it from (file)."
    ),
    ", or a multipart part named file.": ".",
}


def over_mcp(text: str) -> str:
    """A description as an agent reads it: without what only an HTTP caller can do."""
    for http_only, said in HTTP_ONLY.items():
        text = text.replace(http_only, said)
    return text


def tool(blk, document: dict | None = None, *, held: bool = False) -> Tool:
    """The block as an MCP tool: its name, the manifest's description, its schemas.
    ``held``: the server holds the app's credentials (no clientKey, clientSecret)."""
    description = over_mcp(manifest.block_entry(blk)["description"])
    rules = schema.rules(blk, held=held)
    if rules:
        description += " " + rules
    inputs = schema.input_schema(blk, document, held=held)
    for prop in inputs["properties"].values():
        if "description" in prop:
            prop["description"] = over_mcp(prop["description"])
    return Tool(
        name=blk.name,
        description=description,
        input_schema=inputs,
        output_schema=schema.output_schema(blk, document),
        annotations=annotations(blk),
    )


@lru_cache(maxsize=2)
def tool_list(held: bool = False) -> tuple[Tool, ...]:
    document = openapi.openapi()
    return tuple(tool(blk, document, held=held) for blk in REGISTRY if not token_block(blk, held))


def token_block(blk, held: bool) -> bool:
    """With the app's credentials held by the server, the token blocks (getAccessToken,
    invalidateAccessToken: the app's key and secret themselves) are not offered: the connector
    gets and renews tokens itself, and the agent never holds one."""
    return held and blk.auth == "basic"


def text(value) -> str:
    return jsonx.dumps(value).decode("utf-8")


#: The code of a success whose result does not have the documented shape.
UNEXPECTED_RESULT = "UNEXPECTED_RESULT"


@cache
def result_validator(name: str):
    """A compiled check of block ``name``'s results against its ``outputSchema`` (jsonschema
    is imported at the first result, not at start-up)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema.output_schema(REGISTRY.get(name)))


def misfit(name: str, structured) -> str | None:
    """Where ``structured`` breaks the tool's ``outputSchema``, in words (the place and the
    rule, never the value), or None when it fits."""
    from jsonschema.exceptions import best_match

    error = best_match(result_validator(name).iter_errors(structured))
    if error is None:
        return None
    rule = error.validator
    expected = error.validator_value if rule in ("type", "required", "enum") else None
    return f"at {error.json_path}: {rule}" + (f" {text(expected)}" if expected else "")


#: The argument an agent gives an Idempotency-Key in (taken out before the block runs).
KEY_ARGUMENT = schema.KEY_ARGUMENT
#: What a replayed answer carries in its ``_meta``, and says in a last text part.
REPLAYED_META = {"idempotentReplayed": True}
REPLAYED_NOTE = (
    "Note: this is the answer the first call with this idempotencyKey got; the call was not "
    "sent to InstaMsg again."
)


def tool_result(envelope: dict, name: str | None = None, *, replayed=False) -> CallToolResult:
    """A block's envelope as the tool's result. Success: the result as structured content
    (a list under ``items``, as ``outputSchema`` says) and as JSON text, with a warning
    for each argument the block ignored. Error: ``isError``, and the connector's error
    (status_code, status_msg, fields, errors, request_id) as JSON text; the connector
    already took every secret of the call out of it.

    With the tool's ``name``, a success is checked against its ``outputSchema`` first: the
    SDK's client refuses a result that does not fit (a host would show the agent a bare
    failure), so one that does not is ``isError`` UNEXPECTED_RESULT, saying where, with the
    result as text after it.

    ``replayed``: the answer an idempotencyKey already held; marked in ``_meta``
    (``idempotentReplayed``) and by a last text part.
    """
    result = plain_result(envelope, name)
    if replayed:
        result.meta = dict(REPLAYED_META)
        result.content.append(TextContent(text=REPLAYED_NOTE))
    return result


def plain_result(envelope: dict, name: str | None) -> CallToolResult:
    ((_, value),) = envelope["contextWrites"].items()
    warnings = envelope.get("warnings") or []
    if envelope["callback"] == "success":
        structured = value if isinstance(value, dict) else {"items": value}
        content = [TextContent(text=text(structured))]
        content += [TextContent(text="Warning: " + warning) for warning in warnings]
        where = misfit(name, structured) if name is not None else None
        if where is not None:
            error = {
                "status_code": UNEXPECTED_RESULT,
                "status_msg": f"{name} succeeded, but InstaMsg's answer does not have the "
                f"documented shape ({where}); it follows as text.",
                "retryable": False,
            }
            return CallToolResult(content=[TextContent(text=text(error)), *content], is_error=True)
        return CallToolResult(content=content, structured_content=structured)
    error = dict(value) if isinstance(value, dict) else {"status_msg": str(value)}
    if warnings:
        error["warnings"] = warnings
    return CallToolResult(content=[TextContent(text=text(error))], is_error=True)
