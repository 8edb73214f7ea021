"""The MCP server over HTTP (connector/mcp/http.py, `flask --app app blocks mcp --http`).

Fast tests: the bind address, the key a request carries, the command's refusals, the
resources. Slow tests (marked): the real command in a process of its own on a loopback port,
driven by the SDK's own streamable HTTP client as a remote agent's host drives it, and by
plain HTTP where the protocol is not the point (401, 403, 413).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
import requests
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from starlette.datastructures import Headers

from app import create_app
from connector.config import Settings
from connector.engine.registry import REGISTRY
from connector.mcp import http, resources, runners, schema, server, tools
from sandbox.app import create_sandbox_app
from sandbox.store import Store
from tests.faces.test_mcp import BLOCKS, texts
from tests.support.netns import Netns
from tests.support.redisd import redisd_fixture  # noqa: F401  (a real redis-server)
from tests.support.servers import ROOT, gunicorn, serve
from tests.support.upstream import APP

FLASK = str(Path(sys.executable).with_name("flask"))
KEY_A, KEY_B = "key-a-7d41c9", "key-b-0e83f5"
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
#: What a client of the streamable HTTP transport says it accepts.
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


# -- fast: the parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("8090", ("127.0.0.1", 8090)),
        ("0.0.0.0:8090", ("0.0.0.0", 8090)),
        (":8090", ("127.0.0.1", 8090)),
        ("[::1]:8090", ("::1", 8090)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_the_bind_address_is_host_and_port_with_loopback_by_default(text, bound):
    assert http.parse_bind(text) == bound


@pytest.mark.parametrize("text", ["", "eighty", "127.0.0.1:", "127.0.0.1:0", "h:65536"])
def test_a_bind_address_without_a_usable_port_is_refused(text):
    with pytest.raises(ValueError, match="the port must be a number from 1 to 65535"):
        http.parse_bind(text)


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"Authorization": "Bearer k1"}, "k1"),
        ({"Authorization": "bearer  k1 "}, "k1"),
        ({"X-API-Key": "k2"}, "k2"),
        ({"Authorization": "Bearer k1", "X-API-Key": "k2"}, "k1"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, None),
        ({"Authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_the_api_key_is_the_bearer_token_or_x_api_key(headers, key):
    assert http.given_key(Headers(headers=headers)) == key


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_loopback_addresses_are_told_apart(host, loopback):
    assert http.is_loopback(host) is loopback


#: What only an HTTP caller can do or send: no tool description may point an agent at it.
HTTP_WORDS = ("?stream", "multipart", "X-API-Key", "header", "Idempotency-Key")
#: The verbs a description may open with, by the verb its tool's name starts with: the name
#: and the first word an agent reads agree.
VERBS = {
    "get": ("Gets", "Lists", "Shows"),
    "create": ("Creates",),
    "update": ("Changes", "Replaces", "Gives"),
    "delete": ("Deletes",),
    "invalidate": ("Revokes",),
    "upload": ("Uploads",),
    "download": ("Downloads",),
    "publish": ("Publishes",),
    "release": ("Releases",),
}


def every_description(tool):
    yield tool.description
    yield from (p.get("description", "") for p in tool.input_schema["properties"].values())


@pytest.mark.parametrize("tool", tools.tool_list(), ids=lambda t: t.name)
def test_a_tool_description_says_what_an_agent_can_do_over_mcp(tool):
    for text in every_description(tool):
        assert not [w for w in HTTP_WORDS if w in text], text
    verb = next(v for v in VERBS if tool.name.startswith(v))
    assert tool.description.startswith(VERBS[verb]), tool.description


def test_the_first_sentences_of_the_tools_are_all_different():
    first = [t.description.split(". ")[0] for t in tools.tool_list()]
    assert len(set(first)) == len(first)


@pytest.mark.parametrize("phrase", tools.HTTP_ONLY)
def test_each_http_only_phrase_replaced_for_agents_is_still_in_the_blocks_words(phrase):
    words = [blk.description for blk in REGISTRY] + [
        prop.get("description", "")
        for blk in REGISTRY
        for prop in schema.input_schema(blk)["properties"].values()
    ]
    assert any(phrase in text for text in words)


def invoke(tmp_path, *args, **env):
    from connector import cli

    app = create_app(Settings(sandbox=True, data_dir=str(tmp_path), **env))
    app.cli.add_command(cli.blocks)
    return app.test_cli_runner().invoke(args=["blocks", "mcp", *args])


def test_without_api_keys_an_address_other_than_loopback_is_refused_at_start(tmp_path):
    result = invoke(tmp_path, "--http", "0.0.0.0:8090")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: CONNECTOR_API_KEYS is not set: anyone who reaches 0.0.0.0 could run blocks. "
        "Set CONNECTOR_API_KEYS, serve on 127.0.0.1, or add --allow-keyless."
    )


def test_a_bind_address_that_is_no_port_is_a_usage_error(tmp_path):
    result = invoke(tmp_path, "--http", "127.0.0.1:http")
    assert result.exit_code == 2
    assert "Invalid value for --http: the port must be a number" in result.stderr


def in_process(app):
    return server.build_server(
        lambda name, args, key=None: runners.run_in_process(
            app.extensions["instamsg"], name, args, key
        )
    )


def run_with(target, scenario):
    answers = []

    async def main():
        async with Client(target) as client:
            answers.append(await scenario(client))

    anyio.run(main)
    return answers[0]


def test_the_manifest_and_the_docs_are_resources(tmp_path):
    app = create_app(Settings(sandbox=True, data_dir=str(tmp_path)))

    async def scenario(client):
        listed = (await client.list_resources()).resources
        read = {r.uri: (await client.read_resource(r.uri)).contents[0] for r in listed}
        return listed, read

    listed, read = run_with(in_process(app), scenario)
    assert [r.uri for r in listed] == [d.uri for d in resources.DOCUMENTS]
    assert all(r.description and r.mime_type for r in listed)
    manifest = read["instamsg://manifest.json"]
    assert manifest.mime_type == "application/json"
    assert manifest.text == (ROOT / "manifest.json").read_text()
    assert read["instamsg://docs/blocks.md"].text == (ROOT / "docs" / "blocks.md").read_text()
    assert read["instamsg://docs/mcp.md"].text == (ROOT / "docs" / "mcp.md").read_text()


def test_an_unknown_resource_is_a_protocol_error_that_lists_the_ones_there_are(tmp_path):
    from mcp.shared.exceptions import MCPError

    app = create_app(Settings(sandbox=True, data_dir=str(tmp_path)))

    async def scenario(client):
        with pytest.raises(MCPError) as caught:
            await client.read_resource("instamsg://secrets.txt")
        return caught.value

    error = run_with(in_process(app), scenario)
    assert error.message.startswith("There is no resource 'instamsg://secrets.txt': there are")
    assert "instamsg://manifest.json" in error.message


# -- slow: the real command on a loopback port ------------------------------------------------


@contextmanager
def mcp_http(tmp_path, *args, **env):
    """`flask --app app blocks mcp --http 127.0.0.1:PORT` (sandbox mode, its own data folder)
    in a process of its own; yields the /mcp URL and the process (``output()``: its log)."""
    command = [
        "sh", "-c", 'exec "$0" "$@" --http "127.0.0.1:$PORT"',
        FLASK, "--app", str(ROOT / "app.py"), "blocks", "mcp", *args,
    ]  # fmt: skip
    data = tmp_path / "data"
    full = {"INSTAMSG_SANDBOX": "1", "INSTAMSG_DATA_DIR": str(data), **env}
    drop = ("CONNECTOR_API_KEYS", "RATE_LIMIT", "INSTAMSG_CLIENT_KEY", "INSTAMSG_CLIENT_SECRET")
    with serve(command, full, timeout=60, drop=[d for d in drop if d not in env]) as (
        base,
        process,
    ):
        yield base + http.MCP_PATH, process


@asynccontextmanager
async def session(url, key=KEY_A, **headers):
    """The SDK's streamable HTTP client connected to ``url`` with API key ``key``."""
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as web,
        Client(streamable_http_client(url, http_client=web)) as client,
    ):
        yield client


def over_http(url, scenario, key=KEY_A, **headers):
    answers = []

    async def main():
        async with session(url, key, **headers) as client:
            answers.append(await scenario(client))

    anyio.run(main)
    return answers[0]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """One server for the module's tests: two API keys, sandbox mode."""
    tmp_path = tmp_path_factory.mktemp("mcp-http")
    with mcp_http(tmp_path, CONNECTOR_API_KEYS=f"{KEY_A},{KEY_B}") as (url, process):
        process.data = tmp_path / "data"
        yield url, process


@pytest.mark.slow
def test_over_http_the_tool_list_has_every_block(keyed):
    url, _ = keyed

    async def scenario(client):
        return (await client.list_tools()).tools

    listed = over_http(url, scenario)
    assert [t.name for t in listed] == BLOCKS
    for tool in listed:
        assert tool.description.startswith(tools.over_mcp(REGISTRY.get(tool.name).description))


@pytest.mark.slow
def test_over_http_a_flow_from_a_token_to_the_messages_read_back(keyed):
    url, process = keyed

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
        device = await call(
            "createClient",
            {
                "accessToken": token,
                "tenantId": tenant["id"],
                "type": "device",
                "name": "pump-7",
                "provisioningId": "356938035643809",
                "pubTopics": ["telemetry"],
            },
        )
        one = {"accessToken": token, "tenantId": tenant["id"], "clientId": device["id"]}
        published = await call(
            "publishMessage",
            {**one, "id": 1, "type": "pub", "topic": "telemetry", "payload": {"t": 21.5}, "qos": 1},
        )
        messages = await call("getMessages", one)
        return tenant, device, published, messages, seen

    tenant, device, published, messages, seen = over_http(url, scenario)
    assert tenant["name"] == "Farm" and device["tenant_id"] == tenant["id"]
    assert [m["id"] for m in messages["items"]] == [published["messageId"]]
    assert messages["items"][0]["payload"] == '{"t":21.5}'
    for result in seen:
        assert json.loads(result.content[0].text) == result.structured_content
        assert "demo-secret" not in texts(result)
    logged = process.output()
    assert KEY_A not in logged and "demo-secret" not in logged


@pytest.mark.slow
def test_over_http_a_bad_argument_and_an_upstream_error_are_is_error(keyed):
    url, process = keyed

    async def scenario(client):
        bad = await client.call_tool(
            "createTenant", {**APP, "name": "Farm", "maxClients": -1, "maxMessages": 10}
        )
        faults = create_sandbox_app(Store(process.data / "sandbox.sqlite3")).test_client()
        rule = {"method": "POST", "path": "/api/v1/tenants", "fault": "503", "times": 1}
        assert faults.post("/_sandbox/faults", json=rule).status_code in (200, 201)
        failed = await client.call_tool(
            "createTenant", {**APP, "name": "Farm", "maxClients": 1, "maxMessages": 10}
        )
        return bad, failed

    bad, failed = over_http(url, scenario)
    error = json.loads(bad.content[0].text)
    assert bad.is_error and error["status_code"] == "INVALID_FIELDS"
    assert error["fields"] == ["maxClients"]
    upstream = json.loads(failed.content[0].text)
    assert failed.is_error and upstream["status_code"] == "API_ERROR"
    assert upstream["upstream"]["status"] == 503 and upstream["retryable"] is True


def post(url, body, **headers):
    return requests.post(url, data=json.dumps(body), headers={**ACCEPT, **headers}, timeout=30)


CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "createTenant", "arguments": {**APP, "name": "Nope", "maxMessages": 1}},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-31"},
        {"X-API-Key": "wrong-key-31"},
        {"Authorization": "Basic " + KEY_A},
        {"Authorization": f"Bearer {KEY_A}x"},
    ],
    ids=["none", "wrong bearer", "wrong x-api-key", "not bearer", "longer"],
)
def test_over_http_a_missing_or_wrong_key_is_401_before_any_tool_runs(keyed, headers):
    url, process = keyed
    before = process.output().count('"msg": "block call"')
    refused = post(url, CALL, **headers)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    error = refused.json()["contextWrites"]["to"]
    assert error["status_code"] == "UNAUTHORIZED"
    assert error["status_msg"] == (
        "This connector needs an API key: give one of its keys as the Authorization header "
        "(Bearer <key>) or the X-API-Key header."
    )
    assert process.output().count('"msg": "block call"') == before  # nothing ran
    assert "wrong-key-31" not in process.output()
    # The SDK's client sees the refusal too, and connects with a right key, either header.
    with pytest.raises(ExceptionGroup) as caught:  # out of the client's task groups
        over_http(url, lambda client: client.list_tools(), key="wrong-key-31")
    assert caught.group_contains(MCPError, match="Server returned an error response")
    assert over_http(url, lambda client: client.list_tools(), key=None, **{"X-API-Key": KEY_B})


@pytest.mark.slow
def test_over_http_a_get_opens_no_stream_that_could_hold_a_connection(keyed):
    """A stateless server pushes nothing: a keyed GET once opened a stream that never ended
    (256 of them would have taken every connection)."""
    url, _ = keyed
    answer = requests.get(
        url,
        headers={"Authorization": f"Bearer {KEY_A}", "Accept": "text/event-stream"},
        timeout=10,
    )
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"


@pytest.mark.slow
def test_over_http_the_health_route_answers_without_a_key(keyed):
    url, _ = keyed
    answer = requests.get(url.removesuffix(http.MCP_PATH) + http.HEALTH_PATH, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "https://127.0.0.1.evil.example"}, 403),
        ({"Host": "evil.example"}, 421),
        ({"Host": "evil.example:80", "Origin": "http://evil.example"}, 421),
        ({"Origin": "http://localhost:5173"}, 200),  # a page on this machine
        ({}, 200),  # no Origin: not a browser
    ],
)
def test_over_http_a_foreign_origin_or_host_is_refused_against_dns_rebinding(
    keyed, headers, status
):
    url, process = keyed
    answer = post(url, INITIALIZE, **{"Authorization": f"Bearer {KEY_A}", **headers})
    assert answer.status_code == status, answer.text
    # The SDK's warning about the refused header is one of the connector's JSON log lines.
    assert [line for line in process.output().splitlines() if line[:1] != "{"] == []


@pytest.mark.slow
def test_over_http_fifty_concurrent_tool_calls_from_five_clients_are_all_answered(keyed):
    url, _ = keyed
    answers = []

    async def one_client(number):
        async with session(url, KEY_A if number % 2 else KEY_B) as client:

            async def call(index):
                result = await client.call_tool(
                    "createTenant",
                    {**APP, "name": f"c{number}-{index}", "maxClients": 1, "maxMessages": 1},
                )
                answers.append((f"c{number}-{index}", result))

            async with anyio.create_task_group() as group:
                for index in range(10):
                    group.start_soon(call, index)

    async def main():
        async with anyio.create_task_group() as group:
            for number in range(5):
                group.start_soon(one_client, number)

    anyio.run(main)
    assert len(answers) == 50
    assert [texts(r) for _, r in answers if r.is_error] == []
    assert sorted(r.structured_content["name"] for _, r in answers) == sorted(n for n, _ in answers)


@pytest.mark.slow
def test_over_http_idempotency_keys_are_each_callers_own(keyed):
    url, _ = keyed

    async def setup(client):
        tenant = await client.call_tool(
            "createTenant", {**APP, "name": "Keys", "maxClients": 1, "maxMessages": 10}
        )
        device = await client.call_tool(
            "createClient",
            {
                **APP,
                "tenantId": tenant.structured_content["id"],
                "type": "device",
                "name": "pump",
                "provisioningId": "p-1",
                "pubTopics": ["t"],
            },
        )
        return {
            **APP,
            "tenantId": tenant.structured_content["id"],
            "clientId": device.structured_content["id"],
        }

    one = over_http(url, setup)
    message = {**one, "id": 1, "type": "pub", "topic": "t", "payload": "p", "qos": 1}

    async def publish(client):
        return await client.call_tool("publishMessage", {**message, "idempotencyKey": "shared"})

    first = over_http(url, publish, key=KEY_A)
    again = over_http(url, publish, key=KEY_A)
    other = over_http(url, publish, key=KEY_B)

    async def read(client):
        return (await client.call_tool("getMessages", one)).structured_content["items"]

    messages = over_http(url, read)
    assert not (first.meta or {}).get("idempotentReplayed")
    assert (again.meta or {}).get("idempotentReplayed") is True
    assert again.structured_content == first.structured_content
    # The same key from another caller is another call: published, not replayed.
    assert not (other.meta or {}).get("idempotentReplayed") and not other.is_error
    assert len(messages) == 2


@pytest.mark.slow
def test_over_http_the_rate_limit_counts_tool_calls_per_api_key(tmp_path):
    keys = f"{KEY_A},{KEY_B}"
    with mcp_http(tmp_path, CONNECTOR_API_KEYS=keys, RATE_LIMIT="3/minute") as (url, process):

        async def four_calls(client):
            await client.list_tools()  # not a tool call: not counted
            return [await client.call_tool("getTenants", APP) for _ in range(4)]

        a = over_http(url, four_calls, key=KEY_A)
        b = over_http(url, four_calls, key=KEY_B)
        logged = process.output()
    for calls in (a, b):
        assert [r.is_error for r in calls] == [False, False, False, True]
        refused = json.loads(calls[3].content[0].text)
        assert refused["status_code"] == "RATE_LIMITED" and refused["retryable"] is True
        assert "nothing was sent to InstaMsg" in refused["status_msg"]
        # The wait is the window's: the first call of the minute leaves it, under 60 s on.
        assert 1 <= refused["retry_after_s"] <= 60
    assert KEY_A not in logged and KEY_B not in logged


@pytest.mark.slow
def test_over_http_a_body_over_the_limit_is_413_unread(tmp_path):
    env = {"CONNECTOR_API_KEYS": KEY_A, "MAX_REQUEST_BYTES": "4096"}
    with mcp_http(tmp_path, **env) as (url, _):
        big = {**CALL, "params": {**CALL["params"], "arguments": {"name": "x" * 5000}}}
        refused = post(url, big, Authorization=f"Bearer {KEY_A}")
        small = post(url, INITIALIZE, Authorization=f"Bearer {KEY_A}")
    assert refused.status_code == 413
    assert small.status_code == 200


@pytest.mark.slow
def test_over_http_without_api_keys_it_serves_loopback_and_says_so(tmp_path):
    with mcp_http(tmp_path) as (url, process):
        listed = over_http(url, lambda client: client.list_tools(), key=None)
        logged = [json.loads(line) for line in process.output().splitlines() if line[:1] == "{"]
    assert len(listed.tools) == len(BLOCKS)
    (start,) = [e for e in logged if e["msg"] == "MCP server on HTTP"]
    assert start["api_keys"] == "none: CONNECTOR_API_KEYS is not set"
    assert any(e["msg"].startswith("NO API KEYS") and e["level"] == "warning" for e in logged)


@pytest.mark.slow
def test_over_http_with_held_credentials_no_token_tool_is_offered(tmp_path):
    held = {"INSTAMSG_CLIENT_KEY": "demo-key", "INSTAMSG_CLIENT_SECRET": "demo-secret"}
    with mcp_http(tmp_path, CONNECTOR_API_KEYS=KEY_A, **held) as (url, process):

        async def scenario(client):
            listed = (await client.list_tools()).tools
            tenant = await client.call_tool(
                "createTenant", {"name": "Farm", "maxClients": 1, "maxMessages": 10}
            )
            return listed, tenant

        listed, tenant = over_http(url, scenario)
        logged = process.output()
    names = {t.name for t in listed}
    assert not names & {"getAccessToken", "invalidateAccessToken"}
    assert all("clientSecret" not in t.input_schema["properties"] for t in listed)
    assert tenant.structured_content["name"] == "Farm"
    assert "demo-secret" not in logged and "demo-secret" not in texts(tenant)


@pytest.mark.slow
def test_over_http_with_url_the_callers_key_runs_the_block_on_the_deployed_connector(tmp_path):
    deployed = {
        "INSTAMSG_SANDBOX": "1",
        "INSTAMSG_DATA_DIR": str(tmp_path / "deployed"),
        "CONNECTOR_API_KEYS": f"{KEY_A},{KEY_B}",
    }
    with gunicorn(deployed, workers=1) as (base, connector):
        with mcp_http(tmp_path, "--url", base, CONNECTOR_API_KEYS=KEY_A) as (url, process):

            async def scenario(client):
                return await client.call_tool("getTenants", APP)

            tenants = over_http(url, scenario)
            mcp_log = process.output()
        served = connector.output()
    assert tenants.structured_content == {"items": []}
    assert served.count('"path":"/blocks/getTenants"') == 1
    assert '"msg": "block call"' not in mcp_log  # it ran on the deployed connector
    assert KEY_A not in mcp_log and KEY_A not in served


def closed_within(sock, seconds) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (it answers nothing first)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.slow
@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n", id="half a head"),
        pytest.param(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 400\r\n\r\n{"jsonrpc": ',
            id="a body that stalls",
        ),
    ],
)
def test_over_http_a_client_that_stalls_is_disconnected(tmp_path, sent):
    env = {"CLIENT_HEADER_TIMEOUT": "1", "CLIENT_BODY_TIMEOUT": "1"}
    with mcp_http(tmp_path, **env) as (url, process):
        host, port = url.split("//")[1].split("/")[0].split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(sent)
            # Well past the one second it is allowed, and well before the test gives up.
            closed = closed_within(sock, 20)
        logged = process.output()
    assert closed
    assert '"msg": "mcp client too slow"' in logged


# -- the MCP Inspector's CLI over HTTP (slow) -------------------------------------------------


def ci_tool(name: str) -> str:
    """What a .ci script prints: the path of a tool it installed once per machine."""
    return subprocess.run(
        ["bash", str(ROOT / ".ci" / name)], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def inspector_lab(tmp_path_factory):
    """The MCP server (one API key) in a network namespace with only loopback up, and a
    function running the MCP Inspector's CLI (.ci/mcp-inspector, on Node from .ci/node) there
    against its /mcp URL with the key as a Bearer header."""
    node, command = ci_tool("node"), ci_tool("mcp-inspector")
    folder = tmp_path_factory.mktemp("inspector")
    home = folder / "home"  # the Inspector keeps a catalog under HOME
    home.mkdir()
    with Netns() as ns:
        url, _ = ns.enter(mcp_http(folder, CONNECTOR_API_KEYS=KEY_A))

        def run(*args, key=KEY_A):
            env = {**os.environ, "PATH": f"{node}:{os.environ['PATH']}", "HOME": str(home)}
            return ns.run(
                subprocess.run,
                [command, "--cli", url, "--transport", "http",
                 "--header", f"Authorization: Bearer {key}", *args],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip

        yield run


@pytest.mark.slow
def test_the_inspector_lists_the_tools_over_http(inspector_lab):
    done = inspector_lab("--method", "tools/list")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [t["name"] for t in json.loads(done.stdout)["tools"]] == BLOCKS


@pytest.mark.slow
def test_the_inspector_calls_a_tool_over_http_and_a_wrong_key_is_refused(inspector_lab):
    args = ["clientKey=demo-key", "clientSecret=demo-secret", "name=Farm", "maxMessages=10"]
    done = inspector_lab(
        "--method", "tools/call", "--tool-name", "createTenant",
        "--tool-arg", *args, "maxClients=3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["isError"] is False and answer["structuredContent"]["max_clients"] == 3
    # A 401 is where an MCP client may start OAuth: --stored-auth-only keeps the Inspector
    # from waiting for a person, and it stops, saying it needs authorization.
    refused = inspector_lab("--stored-auth-only", "--method", "tools/list", key="wrong-key-77")
    assert refused.returncode != 0 and not refused.stdout
    assert json.loads(refused.stderr.splitlines()[-1])["error"]["code"] == "auth_required"


# -- the README's configuration, as written (slow) --------------------------------------------

README = (ROOT / "README.md").read_text()
HTTP_SECTION = README.split("### Over HTTP, for remote agents\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.slow
def test_the_readme_http_configuration_connects_as_written(tmp_path):
    (block,) = [b.split("```", 1)[0] for b in HTTP_SECTION.split("```json\n")[1:]]
    (entry,) = json.loads(block)["mcpServers"].values()
    assert entry["type"] == "http" and entry["url"].endswith(f":{http.DEFAULT_PORT}/mcp")
    (header,) = entry["headers"].items()
    key = header[1].removeprefix("Bearer ")
    with mcp_http(tmp_path, CONNECTOR_API_KEYS=key) as (url, _):
        # The README's URL, on the port this test's server got.
        there = entry["url"].replace(f":{http.DEFAULT_PORT}/", f":{urlsplit(url).port}/")
        listed = over_http(there, lambda client: client.list_tools(), key=None, **dict([header]))
    assert len(listed.tools) == len(BLOCKS)


# -- two instances behind one Redis: stateless as the transport is (slow) ----------------------


@pytest.mark.slow
def test_two_instances_sharing_redis_count_one_rate_limit_and_replay_one_key(tmp_path, redisd):
    env = {
        "CONNECTOR_API_KEYS": KEY_A,
        "RATE_LIMIT": "3/minute",
        "REDIS_URL": redisd.url,
        # One sandbox for both, as both would call the same InstaMsg.
        "INSTAMSG_DATA_DIR": str(tmp_path / "shared"),
    }
    with (
        mcp_http(tmp_path / "one", **env) as (first, _),
        mcp_http(tmp_path / "two", **env) as (second, _),
    ):
        tenant = {**APP, "name": "Once", "maxClients": 1, "maxMessages": 1, "idempotencyKey": "k1"}

        async def create(client):
            return await client.call_tool("createTenant", tenant)

        async def list_tenants(client):
            return await client.call_tool("getTenants", APP)

        made = over_http(first, create)
        again = over_http(second, create)  # the other instance: the key is in Redis
        listed = over_http(first, list_tenants)
        over = over_http(second, list_tenants)  # the fourth call between them: refused
    assert not made.is_error and (again.meta or {}).get("idempotentReplayed") is True
    assert again.structured_content == made.structured_content
    assert [t["name"] for t in listed.structured_content["items"]] == ["Once"]
    assert over.is_error and json.loads(over.content[0].text)["status_code"] == "RATE_LIMITED"
