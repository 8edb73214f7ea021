"""Every block as an MCP tool (connector/mcp/, `flask --app app blocks mcp`).

Fast tests: the schema conversion and the annotations as tables over the registry, and
the server driven in process by the SDK's own client. Slow tests (marked): the real
`flask` command over stdio, driven by the SDK's client as an agent's host runs it, in
sandbox mode and with --url against gunicorn on loopback.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from jsonschema import Draft202012Validator
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from app import create_app
from connector.config import Settings
from connector.engine.idempotency_keys import MAX_KEY
from connector.engine.registry import REGISTRY
from connector.generate import manifest, openapi, samples
from connector.mcp import runners, schema, server, tools
from sandbox.app import create_sandbox_app
from sandbox.store import Store
from tests.support.servers import ROOT, free_port, gunicorn
from tests.support.upstream import APP

FLASK = str(Path(sys.executable).with_name("flask"))
BLOCKS = [blk.name for blk in REGISTRY]
SAMPLES = json.loads(samples.SAMPLES_FILE.read_text())
#: Keywords of OpenAPI 3.0 that JSON Schema 2020-12 does not have (or means otherwise).
OPENAPI_ONLY = {"nullable", "example", "discriminator", "xml", "externalDocs"}


def keys_anywhere(value) -> set[str]:
    """Every key of every object in ``value``, at any depth (property names included)."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_anywhere(v)}
    return set()


def schema_keywords(value) -> set[str]:
    """The keywords of a schema, at any depth, not counting the names of properties."""
    if isinstance(value, list):
        return {k for v in value for k in schema_keywords(v)}
    if not isinstance(value, dict):
        return set()
    found = set(value)
    for key, sub in value.items():
        if key in ("properties", "patternProperties", "$defs"):
            found |= {k for s in sub.values() for k in schema_keywords(s)}
        elif key not in ("enum", "const", "examples", "default", "required"):
            found |= schema_keywords(sub)
    return found


# -- the schemas, block by block ----------------------------------------------------------


def test_there_is_one_tool_per_block_named_as_the_block():
    assert [t.name for t in tools.tool_list()] == BLOCKS
    assert len(BLOCKS) == 30


@pytest.mark.parametrize("name", BLOCKS)
def test_the_input_schema_is_the_openapi_request_schema_as_portable_json_schema(name):
    blk = REGISTRY.get(name)
    given = schema.input_schema(blk)
    Draft202012Validator.check_schema(given)
    assert given["type"] == "object"
    words = schema_keywords(given)
    assert not words & OPENAPI_ONLY
    assert not {w for w in words if w.startswith("x-")}
    assert "$ref" not in words
    declared = openapi.openapi()["components"]["schemas"][blk.schema.__name__]
    # A tool that changes something also takes an idempotencyKey, after the block's arguments.
    key = given["properties"].pop(schema.KEY_ARGUMENT, None)
    assert (key is None) == (not blk.keyed)
    assert list(given["properties"]) == list(declared["properties"]) == [k for k, _ in blk.args]
    assert given.get("required", []) == declared.get("required", [])
    for key, prop in given["properties"].items():
        source = declared["properties"][key]
        assert prop["description"] == source["description"]
        assert prop.get("examples") == [source["example"]]
        branches = prop.get("anyOf", [prop])
        if source.get("nullable") or schema.nullable_forms(source):  # optional: null is absent
            assert branches[-1] == {"type": "null"}, key
            branches = branches[:-1]
            if len(branches) == 1 and "anyOf" not in source:
                branches = [{**prop, **branches[0]}]
        if "anyOf" in source:
            shapes = [(b.get("type"), b.get("pattern")) for b in branches]
            assert shapes == [(b.get("type"), b.get("pattern")) for b in source["anyOf"]], key
            continue
        for word in ("type", "pattern", "enum", "minimum", "maximum", "format"):
            assert branches[0].get(word) == source.get(word), (key, word)


@pytest.mark.parametrize("name", BLOCKS)
def test_the_output_schema_is_an_object_that_every_recorded_result_fits(name):
    blk = REGISTRY.get(name)
    given = schema.output_schema(blk)
    Draft202012Validator.check_schema(given)
    assert given["type"] == "object"
    assert not schema_keywords(given) & (OPENAPI_ONLY | {"$ref"})
    # InstaMsg may add fields: nothing may refuse them.
    assert "additionalProperties" not in schema_keywords(given) or all(
        v is not False for v in find_values(given, "additionalProperties")
    )
    sample = SAMPLES[name]
    _, many = manifest.result_of(blk)
    if many:
        assert isinstance(sample, list) and given["required"] == ["items"]
        sample = {"items": sample}
    Draft202012Validator(given).validate(sample)


def find_values(value, key):
    if isinstance(value, dict):
        yield from ([value[key]] if key in value else [])
        for sub in value.values():
            yield from find_values(sub, key)
    elif isinstance(value, list):
        for sub in value:
            yield from find_values(sub, key)


def test_a_result_with_a_field_instamsg_added_still_fits():
    given = schema.output_schema(REGISTRY.get("getClients"))
    client = {**SAMPLES["getClients"][0], "firmware": "2.1"}
    client["provisioning_params"] = {**client["provisioning_params"], "gsm_iccid": "8991"}
    Draft202012Validator(given).validate({"items": [client]})


def test_a_result_that_breaks_its_type_does_not_fit():
    given = schema.output_schema(REGISTRY.get("createTenant"))
    tenant = {**SAMPLES["createTenant"], "max_clients": "ten"}
    assert list(Draft202012Validator(given).iter_errors(tenant))


@pytest.mark.parametrize(
    ("openapi", "portable"),
    [
        (
            {"type": "string", "nullable": True, "description": "d", "maxLength": 3},
            {"description": "d", "anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
        ),
        (
            {"anyOf": [{"type": "integer"}, {"type": "string"}], "nullable": True},
            {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
        ),
        ({"description": "anything", "nullable": True}, {"description": "anything"}),
        ({"type": "string", "example": "a"}, {"type": "string", "examples": ["a"]}),
        (
            {"type": "string", "x-secret": True, "writeOnly": True},
            {"type": "string", "writeOnly": True},
        ),
        (
            {"type": "object", "additionalProperties": {}},
            {"type": "object", "additionalProperties": True},
        ),
        ({"type": "array", "items": {}}, {"type": "array"}),
        ({"$ref": "#/components/schemas/P"}, {"type": "object", "properties": {"n": {}}}),
        (
            {"description": "d", "allOf": [{"$ref": "#/components/schemas/P"}]},
            {"type": "object", "properties": {"n": {}}, "description": "d"},
        ),
        (
            {"type": "array", "items": {"$ref": "#/components/schemas/P"}},
            {"type": "array", "items": {"type": "object", "properties": {"n": {}}}},
        ),
    ],
)
def test_portable_rewrites_openapi_keywords(openapi, portable):
    components = {"P": {"type": "object", "properties": {"n": {}}, "additionalProperties": False}}
    assert schema.portable(openapi, components, closed=False) == portable
    Draft202012Validator.check_schema(portable)


def test_portable_keeps_a_closed_object_closed_unless_told_and_refuses_a_foreign_ref():
    components = {"P": {"type": "object", "additionalProperties": False}}
    ref = {"$ref": "#/components/schemas/P"}
    assert schema.portable(ref, components)["additionalProperties"] is False
    assert "additionalProperties" not in schema.portable(ref, components, closed=False)
    with pytest.raises(ValueError, match="cannot inline"):
        schema.portable({"$ref": "other.json#/P"}, components)


def test_the_rules_are_said_in_the_description_of_the_tool_and_of_its_input():
    update = {t.name: t for t in tools.tool_list()}["updateTenant"]
    rules = (
        "Give accessToken, or clientKey and clientSecret. Give at least one of: name, "
        "description, maxClients, maxMessages."
    )
    assert update.input_schema["description"] == rules
    assert update.description == REGISTRY.get("updateTenant").description + " " + rules
    token = {t.name: t for t in tools.tool_list()}["getAccessToken"]
    assert "description" not in token.input_schema
    assert token.input_schema["required"] == ["clientKey", "clientSecret"]


@pytest.mark.parametrize("name", BLOCKS)
def test_with_held_credentials_no_tool_takes_them_and_none_asks_for_them(name):
    blk = REGISTRY.get(name)
    given = schema.input_schema(blk, held=True)
    Draft202012Validator.check_schema(given)
    assert not {"clientKey", "clientSecret"} & set(given["properties"])
    assert not {"clientKey", "clientSecret"} & set(given.get("required", []))
    assert "clientKey" not in given.get("description", "")
    if "accessToken" in given["properties"]:
        assert given["properties"]["accessToken"]["description"].startswith("Leave it out")
    others = set(schema.input_schema(blk)["properties"]) - {"clientKey", "clientSecret"}
    assert set(given["properties"]) == others


# -- annotations --------------------------------------------------------------------------

READ = {"read_only_hint": True, "destructive_hint": False, "idempotent_hint": True}
ADD = {"read_only_hint": False, "destructive_hint": False, "idempotent_hint": False}
CHANGE = {"read_only_hint": False, "destructive_hint": True, "idempotent_hint": True}
EXPECTED_HINTS = {
    "GET": READ,
    "POST": ADD,
    "PUT": CHANGE,
    "DELETE": CHANGE,
}
#: What the block's own declaration says against its method's rule.
EXCEPTIONS = {
    "updateClientAuthToken": {**CHANGE, "idempotent_hint": False},
    "updateClientCertificate": {**CHANGE, "idempotent_hint": False},
    "invalidateAccessToken": {**ADD, "destructive_hint": True},
}


@pytest.mark.parametrize("name", BLOCKS)
def test_annotations_follow_the_method_and_the_blocks_declaration(name):
    blk = REGISTRY.get(name)
    hints = tools.annotations(blk).model_dump(exclude_none=True)
    expected = EXCEPTIONS.get(name, EXPECTED_HINTS[blk.method])
    assert hints == {**expected, "open_world_hint": True}


# -- results ------------------------------------------------------------------------------


def test_a_success_is_structured_content_and_the_same_json_as_text():
    envelope = {"callback": "success", "contextWrites": {"to": {"id": "t1"}}}
    result = tools.tool_result(envelope)
    assert not result.is_error
    assert result.structured_content == {"id": "t1"}
    assert [json.loads(c.text) for c in result.content] == [{"id": "t1"}]


def test_a_list_result_is_under_items_and_warnings_follow_as_text():
    envelope = {
        "callback": "success",
        "contextWrites": {"mine": [{"id": "t1"}]},
        "warnings": ['"nme" is not an argument of getTenants; it was ignored.'],
    }
    result = tools.tool_result(envelope)
    assert result.structured_content == {"items": [{"id": "t1"}]}
    assert json.loads(result.content[0].text) == {"items": [{"id": "t1"}]}
    assert result.content[1].text == (
        'Warning: "nme" is not an argument of getTenants; it was ignored.'
    )


def test_an_error_is_is_error_with_the_connectors_body_as_text():
    body = {
        "status_code": "INVALID_FIELDS",
        "status_msg": "Invalid arguments: qos: Must be one of: 1, 2, 3.",
        "retryable": False,
        "fields": ["qos"],
        "request_id": "r1",
    }
    result = tools.tool_result({"callback": "error", "contextWrites": {"to": body}})
    assert result.is_error and result.structured_content is None
    assert json.loads(result.content[0].text) == body


@pytest.mark.parametrize(
    ("name", "result", "where"),
    [
        ("getTenants", {"tenants": []}, 'at $: required ["items"]'),
        ("getTenants", {"items": {}}, 'at $.items: type "array"'),
        (
            "getSingleTenant",
            {**SAMPLES["getSingleTenant"], "max_clients": "ten"},
            'at $.max_clients: type "integer"',
        ),
        ("getAccessToken", {"token": "t"}, 'at $: required ["access_token"]'),
        (
            "getClients",
            [{**SAMPLES["getClients"][0], "created_at": "yesterday"}],
            'at $.items[0].created_at: type "integer"',
        ),
    ],
)
def test_a_success_that_does_not_fit_its_output_schema_says_where_and_keeps_the_result(
    name, result, where
):
    envelope = {"callback": "success", "contextWrites": {"to": result}}
    answer = tools.tool_result(envelope, name)
    assert answer.is_error and answer.structured_content is None
    error = json.loads(answer.content[0].text)
    assert error["status_code"] == "UNEXPECTED_RESULT"
    assert error["status_msg"] == (
        f"{name} succeeded, but InstaMsg's answer does not have the documented shape "
        f"({where}); it follows as text."
    )
    kept = json.loads(answer.content[1].text)
    assert kept == (result if isinstance(result, dict) else {"items": result})
    # Checked only when the tool is named; without it, the result goes as it is.
    assert not tools.tool_result(envelope).is_error


@pytest.mark.parametrize("name", BLOCKS)
def test_every_recorded_result_passes_the_servers_own_check(name):
    envelope = {"callback": "success", "contextWrites": {"to": SAMPLES[name]}}
    assert not tools.tool_result(envelope, name).is_error


# -- the server in process, through the SDK's client ---------------------------------------


@pytest.fixture
def sandbox_app(tmp_path):
    return create_app(Settings(sandbox=True, data_dir=str(tmp_path)))


def in_process(app, api_key=None):
    return server.build_server(
        lambda name, args, key=None: runners.run_in_process(
            app.extensions["instamsg"], name, args, key, api_key
        )
    )


def texts(result) -> str:
    return "\n".join(c.text for c in result.content)


def run_with_client(target, scenario):
    """``scenario(client)`` with the SDK's client connected to ``target``."""
    answers = []

    async def main():
        async with Client(target) as client:
            answers.append(await scenario(client))

    anyio.run(main)
    return answers[0]


BAD_ARGUMENTS = [
    ("getTenants", {}),
    ("getTenants", {"clientKey": "demo-key"}),
    ("getTenants", {"accessToken": "Bearer abc"}),
    ("createTenant", {**APP, "name": "Farm", "maxClients": "many", "maxMessages": 10}),
    # Against the inputSchema too (an object where it says integer or text): the SDK lets
    # it through, and the connector answers.
    ("createTenant", {**APP, "name": "Farm", "maxClients": {"n": 1}, "maxMessages": 10}),
    ("publishMessage", {**APP, "tenantId": "t", "clientId": "c", "id": 1, "qos": 7}),
    ("updateTenant", {**APP, "id": "t1"}),
    ("getMessages", {**APP, "tenantId": "t", "clientId": "c", "start": "soon"}),
]


@pytest.mark.parametrize(("name", "args"), BAD_ARGUMENTS)
def test_a_bad_argument_answers_what_http_answers(sandbox_app, name, args):
    over_http = sandbox_app.test_client().post(f"/blocks/{name}", json={"args": args})
    assert over_http.status_code == 422
    expected = over_http.get_json()["contextWrites"]["to"]

    async def scenario(client):
        return await client.call_tool(name, args)

    result = run_with_client(in_process(sandbox_app), scenario)
    assert result.is_error
    error = json.loads(result.content[0].text)
    assert error.pop("request_id") and expected.pop("request_id")
    assert error == expected
    assert error["status_code"] in ("REQUIRED_FIELDS", "INVALID_FIELDS") and error["fields"]


def test_an_unknown_tool_is_a_protocol_error_with_the_closest_names(sandbox_app):
    async def scenario(client):
        with pytest.raises(MCPError) as caught:
            await client.call_tool("getTenant", {})
        return caught.value

    error = run_with_client(in_process(sandbox_app), scenario)
    assert error.message.startswith("There is no block named 'getTenant'. Did you mean:")

    async def prefixed(client):
        with pytest.raises(MCPError) as caught:
            await client.call_tool("InstaMsg.getTenants", APP)
        return caught.value

    error = run_with_client(in_process(sandbox_app), prefixed)
    assert error.message == (
        "There is no tool named 'InstaMsg.getTenants'. Did you mean: getTenants?"
    )


def test_the_connectors_api_key_applies_in_process_too(tmp_path):
    app = create_app(Settings(sandbox=True, data_dir=str(tmp_path), api_keys=("key-1",)))

    async def scenario(client):
        return await client.call_tool("getAccessToken", APP)

    refused = run_with_client(in_process(app), scenario)
    assert json.loads(refused.content[0].text)["status_code"] == "UNAUTHORIZED"
    accepted = run_with_client(in_process(app, api_key="key-1"), scenario)
    assert not accepted.is_error and accepted.structured_content["token_type"] == "bearer"


def test_with_held_credentials_an_agent_runs_blocks_without_ever_seeing_them(sandbox_app):
    held = server.build_server(
        lambda name, args, key=None: runners.run_in_process(
            sandbox_app.extensions["instamsg"], name, args, key
        ),
        credentials=APP,
    )

    async def scenario(client):
        listed = (await client.list_tools()).tools
        try:
            await client.call_tool("getAccessToken", {})
            token = None
        except MCPError as refused:
            token = refused
        tenant = await client.call_tool(
            "createTenant", {"name": "Farm", "maxClients": 1, "maxMessages": 10}
        )
        # A token of the agent's own still wins over the held credentials.
        bad = await client.call_tool("getTenants", {"accessToken": "not-a-token"})
        return listed, token, tenant, bad

    listed, token, tenant, bad = run_with_client(held, scenario)
    assert all("clientSecret" not in t.input_schema["properties"] for t in listed)
    # The token blocks are not offered: the agent never holds a token.
    names = {t.name for t in listed}
    assert len(names) == 28 and not names & {"getAccessToken", "invalidateAccessToken"}
    assert token is not None and "holds the app's credentials" in str(token)
    assert tenant.structured_content["name"] == "Farm"
    error = json.loads(bad.content[0].text)
    assert error["status_code"] == "API_ERROR" and error["upstream"]["status"] == 401
    for result in (tenant, bad):
        assert "demo-secret" not in texts(result)


@pytest.mark.parametrize(
    "env", [{"INSTAMSG_CLIENT_KEY": "demo-key"}, {"INSTAMSG_CLIENT_SECRET": "demo-secret"}]
)
def test_held_credentials_need_both_the_key_and_the_secret(env):
    from connector.config import ConfigError, Settings

    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    assert str(refused.value) == (
        "Set both INSTAMSG_CLIENT_KEY and INSTAMSG_CLIENT_SECRET, or neither."
    )


def test_a_url_that_is_not_http_is_a_usage_error(sandbox_app):
    from connector import cli

    sandbox_app.cli.add_command(cli.blocks)
    result = sandbox_app.test_cli_runner().invoke(args=["blocks", "mcp", "--url", "ftp://x"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for --url: must be an http:// or https:// URL."
    )


def test_a_call_that_fails_inside_the_server_is_an_internal_error_without_its_text():
    def broken(name, args, key=None):
        raise RuntimeError("demo-secret leaked into an exception")

    async def scenario(client):
        return await client.call_tool("getTenants", APP)

    result = run_with_client(server.build_server(broken), scenario)
    assert result.is_error
    error = json.loads(result.content[0].text)
    assert error["status_code"] == "INTERNAL_PACKAGE_ERROR"
    assert "demo-secret" not in result.content[0].text


def test_a_remote_connector_that_is_not_there_is_connector_unavailable():
    remote = runners.Remote(f"http://user:pw@127.0.0.1:{free_port()}/")
    envelope, replayed = remote("getTenants", APP)
    assert replayed is False
    error = envelope["contextWrites"]["to"]
    assert error["status_code"] == "CONNECTOR_UNAVAILABLE" and error["retryable"] is True
    assert error["status_msg"].startswith(f"The connector at {remote.shown} could not be")
    assert "pw" not in error["status_msg"]


# -- the real command over stdio (slow) -----------------------------------------------------


def command_env(tmp_path, **extra) -> dict:
    """What a desktop assistant's configuration gives the server: the data folder (the
    SDK's client passes only PATH, HOME and a few more of its own environment)."""
    return {"INSTAMSG_DATA_DIR": str(tmp_path / "data"), **extra}


def stdio_params(tmp_path, *args, **env) -> StdioServerParameters:
    # As a client's configuration runs it: from a folder that is not the repository.
    return StdioServerParameters(
        command=FLASK,
        args=["--app", str(ROOT / "app.py"), "blocks", "mcp", *args],
        env=command_env(tmp_path, **env),
        cwd=str(tmp_path),
    )


@asynccontextmanager
async def stdio_session(tmp_path, *args, **env):
    """The SDK's client, connected to `flask --app app blocks mcp` over stdio; the server's
    stderr is kept in ``client.stderr_path``."""
    log_path = tmp_path / "mcp-stderr.log"
    with open(log_path, "a") as log:
        async with Client(stdio_client(stdio_params(tmp_path, *args, **env), errlog=log)) as c:
            c.stderr_path = log_path
            yield c


def stdio(tmp_path, scenario, *args, **env):
    answers = []

    async def main():
        async with stdio_session(tmp_path, *args, **env) as client:
            answers.append(await scenario(client))

    anyio.run(main)
    return answers[0]


UNREADABLE = [
    pytest.param(b"this is not json", -32700, id="not JSON"),
    pytest.param(b'{"jsonrpc": "2.0", "id": 1', -32700, id="JSON cut off"),
    pytest.param(b'{"hello": "world"}', -32600, id="JSON, no message"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("line", "code"), UNREADABLE)
def test_over_stdio_a_line_that_is_no_message_is_answered_with_a_json_rpc_error(
    tmp_path, line, code
):
    # Then a ping on the next line: the server reads on.
    ping = b'{"jsonrpc": "2.0", "id": 7, "method": "ping"}'
    command = [FLASK, "--app", str(ROOT / "app.py"), "blocks", "mcp"]
    env = {**os.environ, **command_env(tmp_path)}
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    ) as process:
        process.stdin.write(line + b"\n" + ping + b"\n")
        process.stdin.flush()
        out = b""
        deadline = time.monotonic() + 30
        while out.count(b"\n") < 2 and time.monotonic() < deadline:  # no answer: a failure
            if select.select([process.stdout], [], [], 0.5)[0]:
                out += os.read(process.stdout.fileno(), 65536)  # unbuffered, as select sees it
        process.stdin.close()  # the end of the session: the server exits
        process.wait(timeout=30)
    answers = [json.loads(answer) for answer in out.splitlines()]
    assert len(answers) == 2, answers
    assert answers[0] == {"jsonrpc": "2.0", "id": None, "error": answers[0]["error"]}
    assert answers[0]["error"]["code"] == code
    assert answers[1] == {"jsonrpc": "2.0", "id": 7, "result": {}}


@pytest.mark.slow
def test_over_stdio_the_tool_list_has_every_block_with_valid_schemas(tmp_path):
    async def scenario(client):
        return (await client.list_tools()).tools

    listed = stdio(tmp_path, scenario)
    assert [t.name for t in listed] == BLOCKS
    for tool in listed:
        wire = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        Draft202012Validator.check_schema(wire["inputSchema"])
        Draft202012Validator.check_schema(wire["outputSchema"])
        assert wire["inputSchema"]["type"] == wire["outputSchema"]["type"] == "object"
        assert wire["description"].startswith(tools.over_mcp(REGISTRY.get(tool.name).description))
        assert set(wire["annotations"]) == {
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        }


@pytest.mark.slow
def test_over_stdio_a_flow_from_a_token_to_the_messages_read_back(tmp_path):
    async def scenario(client):
        seen = []

        async def call(name, args):
            result = await client.call_tool(name, args)
            seen.append(result)
            assert not result.is_error, texts(result)
            return result.structured_content

        token = (await call("getAccessToken", APP))["access_token"]
        tenant = await call(
            "createTenant",
            {"accessToken": token, "name": "Farm", "maxClients": 5, "maxMessages": 100},
        )
        # From here on the connector gets and renews the token itself (managed tokens).
        device = await call(
            "createClient",
            {
                **APP,
                "tenantId": tenant["id"],
                "type": "device",
                "name": "pump-7",
                "provisioningId": "356938035643809",
                "pubTopics": ["telemetry"],
            },
        )
        one = {**APP, "tenantId": tenant["id"], "clientId": device["id"]}
        published = await call(
            "publishMessage",
            {**one, "id": 1, "type": "pub", "topic": "telemetry", "payload": {"t": 21.5}, "qos": 1},
        )
        messages = await call("getMessages", one)
        return token, tenant, device, published, messages, seen

    token, tenant, device, published, messages, seen = stdio(tmp_path, scenario)
    assert tenant["name"] == "Farm" and tenant["max_clients"] == 5
    assert device["tenant_id"] == tenant["id"] and device["pub_topics"] == ["telemetry"]
    assert published["messageId"]
    assert [m["id"] for m in messages["items"]] == [published["messageId"]]
    assert messages["items"][0]["payload"] == '{"t":21.5}'
    for result in seen:
        assert json.loads(result.content[0].text) == result.structured_content
        assert "demo-secret" not in texts(result)


@pytest.mark.slow
def test_over_stdio_a_bad_argument_and_an_upstream_error_are_is_error(tmp_path):
    async def scenario(client):
        bad = await client.call_tool(
            "createTenant", {**APP, "name": "Farm", "maxClients": -1, "maxMessages": 10}
        )
        # The sandbox's fault rules live in its SQLite file, which the server shares.
        store = Store(tmp_path / "data" / "sandbox.sqlite3")
        faults = create_sandbox_app(store).test_client()
        rule = {"method": "POST", "path": "/api/v1/tenants", "fault": "503", "times": 1}
        assert faults.post("/_sandbox/faults", json=rule).status_code in (200, 201)
        failed = await client.call_tool(
            "createTenant", {**APP, "name": "Farm", "maxClients": 1, "maxMessages": 10}
        )
        wrong = await client.call_tool(
            "getAccessToken", {"clientKey": "demo-key", "clientSecret": "wrong-secret-481"}
        )
        return bad, failed, wrong

    bad, failed, wrong = stdio(tmp_path, scenario)
    assert bad.is_error and bad.structured_content is None
    error = json.loads(bad.content[0].text)
    assert error["status_code"] == "INVALID_FIELDS" and error["fields"] == ["maxClients"]
    assert error["status_msg"] == "Invalid arguments: maxClients: Must be 0 or more."
    assert failed.is_error
    upstream = json.loads(failed.content[0].text)
    assert upstream["status_code"] == "API_ERROR" and upstream["retryable"] is True
    assert upstream["upstream"]["status"] == 503
    assert wrong.is_error
    refused = json.loads(wrong.content[0].text)
    assert refused["status_code"] == "API_ERROR" and refused["upstream"]["status"] == 401
    for result in (bad, failed, wrong):
        assert "demo-secret" not in texts(result) and "wrong-secret-481" not in texts(result)


@pytest.mark.slow
def test_over_stdio_with_url_the_blocks_run_on_a_deployed_connector(tmp_path):
    env = {
        "INSTAMSG_SANDBOX": "1",
        "INSTAMSG_DATA_DIR": str(tmp_path / "deployed"),
        "CONNECTOR_API_KEYS": "key-7f3a91",
    }
    with gunicorn(env, workers=1) as (base, process):

        async def scenario(client):
            token = await client.call_tool("getAccessToken", APP)
            tenants = await client.call_tool("getTenants", APP)
            bad = await client.call_tool("getTenants", {"accessToken": "Bearer x"})
            return token, tenants, bad

        token, tenants, bad = stdio(
            tmp_path, scenario, "--url", base, CONNECTOR_API_KEY="key-7f3a91"
        )

        async def without_key(client):
            return await client.call_tool("getTenants", APP)

        refused = stdio(tmp_path, without_key, "--url", base)
        served = process.output()
    assert token.structured_content["token_type"] == "bearer"
    assert tenants.structured_content == {"items": []}
    assert json.loads(bad.content[0].text)["status_code"] == "INVALID_FIELDS"
    assert json.loads(refused.content[0].text)["status_code"] == "UNAUTHORIZED"
    # The calls were the deployed connector's: its access log has them.
    assert served.count('"path":"/blocks/getTenants"') == 3
    # Nothing ran in the MCP server's own process: its log has no request line.
    logged = [json.loads(line) for line in (tmp_path / "mcp-stderr.log").read_text().splitlines()]
    assert [e["runs"] for e in logged if e["msg"] == "MCP server on stdio"] == [base, base]
    assert not [e for e in logged if e["msg"] == "request"]
    for result in (token, tenants, bad, refused):
        assert "key-7f3a91" not in texts(result) and "demo-secret" not in texts(result)


@pytest.mark.slow
def test_over_stdio_the_server_can_hold_the_apps_credentials(tmp_path):
    async def scenario(client):
        listed = (await client.list_tools()).tools
        tenant = await client.call_tool(
            "createTenant", {"name": "Farm", "maxClients": 1, "maxMessages": 10}
        )
        tenants = await client.call_tool("getTenants", {})
        return listed, tenant, tenants

    held = {"INSTAMSG_CLIENT_KEY": "demo-key", "INSTAMSG_CLIENT_SECRET": "demo-secret"}
    listed, tenant, tenants = stdio(tmp_path, scenario, **held)
    assert not any("clientKey" in t.input_schema["properties"] for t in listed)
    assert [t["id"] for t in tenants.structured_content["items"]] == [
        tenant.structured_content["id"]
    ]
    logged = (tmp_path / "mcp-stderr.log").read_text()
    assert '"credentials": "held by the server"' in logged and "demo-secret" not in logged


@pytest.mark.slow
def test_over_stdio_with_url_nothing_listening_is_connector_unavailable(tmp_path):
    async def scenario(client):
        return await client.call_tool("getTenants", APP)

    result = stdio(tmp_path, scenario, "--url", f"http://127.0.0.1:{free_port()}")
    assert json.loads(result.content[0].text)["status_code"] == "CONNECTOR_UNAVAILABLE"


# -- the raw protocol: stdout, stderr, start-up time (slow) ---------------------------------

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "getTenants", "arguments": {**APP, "clientSecret": "wrong-secret-5"}},
}


@pytest.mark.slow
def test_stdout_is_the_protocol_only_and_the_logs_go_to_stderr(tmp_path):
    params = stdio_params(tmp_path)
    env = {"PATH": os.environ["PATH"], **params.env}
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [params.command, *params.args],
            cwd=params.cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        started = time.perf_counter()
        process.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
        process.stdin.flush()
        first = process.stdout.readline()
        elapsed = time.perf_counter() - started
        for message in (
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            CALL,
        ):
            process.stdin.write((json.dumps(message) + "\n").encode())
        process.stdin.flush()
        answer = process.stdout.readline()
        # The client closes stdin once it has its answers: the server ends, status 0.
        process.stdin.close()
        rest = answer + process.stdout.read()
        assert process.wait(timeout=20) == 0
        err.seek(0)
        logged = err.read().decode()
    lines = [first, *rest.splitlines()]
    answers = [json.loads(line) for line in lines]  # every line of stdout is JSON-RPC
    assert all(a["jsonrpc"] == "2.0" for a in answers)
    assert answers[0]["result"]["serverInfo"]["name"] == "instamsg-connector"
    call = answers[-1]["result"]
    assert call["isError"] is True
    assert json.loads(call["content"][0]["text"])["status_code"] == "API_ERROR"
    # The log lines are stderr's: JSON, one a line, with the call's access line.
    logs = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any(e["msg"] == "MCP server on stdio" for e in logs)
    assert any(e.get("face") == "mcp" and e.get("block") == "getTenants" for e in logs)
    assert "wrong-secret-5" not in logged and "wrong-secret-5" not in rest.decode()
    assert elapsed < 10  # see the next test for the start-up time


@pytest.mark.slow
def test_start_up_takes_under_two_seconds_of_cpu(tmp_path):
    """From the spawn to the answer to initialize: the server's CPU time then (from
    /proc), the best of three starts. Not the wall clock: the machine is shared, and other
    work delays the clock without making the server do more (it is printed for the record)."""
    params = stdio_params(tmp_path)
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, wall = [], []
    for _ in range(3):
        started = time.perf_counter()
        process = subprocess.Popen(
            [params.command, *params.args],
            cwd=params.cwd,
            env={"PATH": os.environ["PATH"], **params.env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        process.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["id"] == 1
        wall.append(time.perf_counter() - started)
        # utime and stime, the 14th and 15th fields (after the command's name in brackets).
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu.append((int(fields[11]) + int(fields[12])) / ticks)
        process.stdin.close()
        assert process.wait(timeout=20) == 0
    print(f"start-up to the initialize answer: wall {wall} s, CPU {cpu} s")
    assert min(cpu) < 2.0


# -- the MCP Inspector's CLI mode (slow) ------------------------------------------------------


@pytest.fixture(scope="module")
def inspector():
    """The MCP Inspector's command (.ci/mcp-inspector installs it once, outside the repo),
    run with Node 24 (.ci/node) inside a network namespace with only loopback up."""

    def tool(command):
        return subprocess.run(
            ["bash", str(ROOT / ".ci" / command)], capture_output=True, text=True, check=True
        ).stdout.strip()

    node, bin_path = tool("node"), tool("mcp-inspector")
    home = tempfile.mkdtemp(prefix="mcp-inspector-home-")  # it keeps a catalog under HOME

    def run(tmp_path, *args):
        command = [
            bin_path,
            "--cli",
            "-e",
            f"INSTAMSG_DATA_DIR={tmp_path / 'data'}",
            FLASK,
            "--app",
            str(ROOT / "app.py"),
            "blocks",
            "mcp",
            *args,
        ]
        env = {**os.environ, "PATH": f"{node}:{os.environ['PATH']}", "HOME": home}
        # As root a network namespace of its own; otherwise inside a user namespace too.
        unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
        return subprocess.run(
            [*unshare, "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def not_logs(stderr: str) -> list[str]:
    """stderr without the server's own JSON log lines: what the Inspector said."""
    return [line for line in stderr.splitlines() if not line.startswith("{")]


@pytest.mark.slow
def test_the_inspector_lists_every_tool_and_its_strict_mode_finds_nothing(inspector, tmp_path):
    done = inspector(tmp_path, "--method", "tools/list", "--strict")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [t["name"] for t in json.loads(done.stdout)["tools"]] == BLOCKS
    # --strict reports each portability problem of a tool schema, warnings included.
    assert not [line for line in not_logs(done.stderr) if line.strip()], done.stderr[-3000:]


@pytest.mark.slow
def test_the_inspector_calls_a_tool_and_sees_a_refusal_as_is_error(inspector, tmp_path):
    args = ["clientKey=demo-key", "clientSecret=demo-secret", "name=Farm", "maxMessages=10"]
    done = inspector(
        tmp_path, "--method", "tools/call", "--tool-name", "createTenant",
        "--tool-arg", *args, "maxClients=3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["isError"] is False
    assert answer["structuredContent"]["name"] == "Farm"
    assert answer["structuredContent"]["max_clients"] == 3
    refused = inspector(
        tmp_path, "--method", "tools/call", "--tool-name", "createTenant",
        "--tool-arg", *args, "maxClients=-3",
    )  # fmt: skip
    assert refused.returncode != 0  # the Inspector's exit status for a tool's isError
    answer = json.loads(refused.stdout)
    assert answer["isError"] is True
    error = json.loads(answer["content"][0]["text"])
    assert error["status_code"] == "INVALID_FIELDS" and error["fields"] == ["maxClients"]


# -- the README's configuration and conversation, as written (slow) ---------------------------

README = (ROOT / "README.md").read_text()
# Up to its subsection over HTTP (tests/faces/test_mcp_http.py runs that one's configuration).
AGENT_SECTION = (
    README.split("## Use it from an AI agent\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
)


def test_the_readme_section_has_one_configuration_and_one_conversation():
    assert AGENT_SECTION.count("```json\n") == 1 and AGENT_SECTION.count("```text\n") == 1


@pytest.mark.slow
def test_the_readme_configuration_runs_the_readme_conversation(tmp_path):
    config = json.loads(AGENT_SECTION.split("```json\n", 1)[1].split("```", 1)[0])
    (entry,) = config["mcpServers"].values()
    here = lambda text: text.replace("/path/to/instamsg-connector", str(ROOT))  # noqa: E731
    assert here(entry["command"]) == FLASK
    env = {**{k: here(v) for k, v in entry["env"].items()}}
    assert env == {"INSTAMSG_DATA_DIR": str(ROOT / "data")}
    # Its own data folder here, and the credentials held by the server, as the text says.
    env.update(
        INSTAMSG_DATA_DIR=str(tmp_path / "data"),
        INSTAMSG_CLIENT_KEY="demo-key",
        INSTAMSG_CLIENT_SECRET="demo-secret",
    )
    params = StdioServerParameters(
        command=here(entry["command"]),
        args=[here(a) for a in entry["args"]],
        env=env,
        cwd=str(tmp_path),
    )
    conversation = AGENT_SECTION.split("```text\n", 1)[1].split("```", 1)[0]
    called = [line.split()[0] for line in conversation.splitlines() if line[:1].isalpha()]

    async def scenario(client):
        calls = []

        async def call(name, args):
            result = await client.call_tool(name, args)
            calls.append(name)
            return result

        tenant = await call("createTenant", {"name": "Farm", "maxClients": 5, "maxMessages": 1000})
        device = await call(
            "createClient",
            {
                "tenantId": tenant.structured_content["id"],
                "type": "device",
                "name": "pump-7",
                "provisioningId": "356938035643809",
                "pubTopics": ["telemetry"],
            },
        )
        one = {
            "tenantId": tenant.structured_content["id"],
            "clientId": device.structured_content["id"],
        }
        message = {**one, "id": 1, "type": "pub", "payload": "21.5", "qos": 1}
        refused = await call("publishMessage", {**message, "topic": "alerts"})
        published = await call("publishMessage", {**message, "topic": "telemetry"})
        messages = await call("getMessages", one)
        return calls, refused, published, messages

    answers = []

    async def main():
        async with Client(params) as client:
            answers.append(await scenario(client))

    anyio.run(main)
    calls, refused, published, messages = answers[0]
    assert calls == called
    assert refused.is_error
    error = json.loads(refused.content[0].text)
    assert error["status_code"] == "API_ERROR" and "'alerts' is not among" in error["status_msg"]
    assert published.structured_content == {"messageId": "1"}
    (message,) = messages.structured_content["items"]
    assert (message["topic"], message["payload"], message["qos"]) == ("telemetry", "21.5", 1)


# -- idempotencyKey: a retried tool call reaches InstaMsg once -------------------------------


async def publish_twice(client, key="agent-call-1"):
    """A device, then one publishMessage sent twice under ``key`` (an agent retrying it),
    then one without a key; answers both keyed results and the messages read back."""

    async def call(name, args):
        result = await client.call_tool(name, args)
        assert not result.is_error, texts(result)
        return result

    tenant = (
        await call("createTenant", {**APP, "name": "Farm", "maxClients": 2, "maxMessages": 10})
    ).structured_content
    device = (
        await call(
            "createClient",
            {
                **APP,
                "tenantId": tenant["id"],
                "type": "device",
                "name": "pump",
                "provisioningId": "p-1",
                "pubTopics": ["t"],
            },
        )
    ).structured_content
    one = {**APP, "tenantId": tenant["id"], "clientId": device["id"]}
    message = {**one, "id": 1, "type": "pub", "topic": "t", "payload": "p", "qos": 1}
    first = await call("publishMessage", {**message, "idempotencyKey": key})
    again = await call("publishMessage", {**message, "idempotencyKey": key})
    other = await client.call_tool("publishMessage", {**message, "idempotencyKey": 7})
    messages = (await call("getMessages", one)).structured_content["items"]
    return first, again, other, messages


def check_published_once(first, again, other, messages):
    assert first.structured_content == again.structured_content
    assert "idempotentReplayed" not in (first.meta or {})
    assert (again.meta or {}).get("idempotentReplayed") is True
    assert texts(again).endswith("the call was not sent to InstaMsg again.")
    assert [m["id"] for m in messages] == [first.structured_content["messageId"]]
    refused = json.loads(other.content[0].text)
    assert other.is_error and refused["fields"] == ["idempotencyKey"]


def test_the_same_idempotency_key_twice_publishes_one_message(sandbox_app):
    check_published_once(*run_with_client(in_process(sandbox_app), publish_twice))


@pytest.mark.parametrize("key", [7, "", "k" * (MAX_KEY + 1)])
def test_an_idempotency_key_that_is_no_text_of_1_to_max_key_characters_is_refused(sandbox_app, key):
    async def scenario(client):
        return await client.call_tool("createTenant", {**APP, "name": "F", "idempotencyKey": key})

    result = run_with_client(in_process(sandbox_app), scenario)
    refused = json.loads(result.content[0].text)
    assert result.is_error and refused["status_code"] == "INVALID_FIELDS"
    assert refused["fields"] == ["idempotencyKey"] and f"1 to {MAX_KEY}" in refused["status_msg"]


def test_a_read_tool_takes_no_idempotency_key_and_a_tool_that_changes_does():
    listed = {t.name: t for t in tools.tool_list()}
    assert "idempotencyKey" in listed["publishMessage"].input_schema["properties"]
    assert "idempotencyKey" not in listed["getMessages"].input_schema["properties"]
    described = listed["publishMessage"].input_schema["properties"]["idempotencyKey"]
    assert "SAME key" in described["description"]


@pytest.mark.slow
def test_over_stdio_with_url_the_key_goes_as_the_header_and_publishes_once(tmp_path):
    env = {"INSTAMSG_SANDBOX": "1", "INSTAMSG_DATA_DIR": str(tmp_path / "deployed")}
    with gunicorn(env, workers=1) as (base, process):
        answers = stdio(tmp_path, publish_twice, "--url", base)
        served = process.output()
    check_published_once(*answers)
    # The deployed connector answered both keyed calls (the second from its key: the header
    # went); the key that is no text was refused before anything was sent.
    assert served.count('"path":"/blocks/publishMessage"') == 2
    assert served.count('"code":"REPLAYED"') == 1
