"""n8n's own MCP Client node (`@n8n/n8n-nodes-langchain.mcpClient`, built into n8n 2.41.1)
against the connector's MCP server over HTTP (`blocks mcp --http`), both in a network namespace
with only loopback up. No package of ours is loaded into n8n: the node speaks MCP's streamable
HTTP transport and authenticates with n8n's Header Auth credentials.

The n8n CLI and its helpers are tests/faces/test_n8n.py's; the MCP server's, test_mcp_http.py's.
"""

from __future__ import annotations

import json

import pytest

from tests.faces.test_mcp_http import mcp_http, over_http
from tests.faces.test_n8n import START, N8n, items, workflow
from tests.support.netns import Netns
from tests.support.upstream import APP

pytestmark = pytest.mark.slow

KEY = "n8n-mcp-key-5b1e"
HEADER_AUTH = {"httpHeaderAuth": {"id": "mcpkey1", "name": "InstaMsg MCP key"}}
MCP_CLIENT = "@n8n/n8n-nodes-langchain.mcpClient"


def mcp_client_node(name: str, url: str, tool: str, arguments: dict) -> dict:
    """n8n's MCP Client node calling ``tool`` with ``arguments`` over HTTP Streamable."""
    return {
        "id": name.lower().replace(" ", "-"),
        "name": name,
        "type": MCP_CLIENT,
        "typeVersion": 1.1,
        "position": [0, 0],
        "parameters": {
            "serverTransport": "httpStreamable",
            "endpointUrl": url,
            "authentication": "headerAuth",
            "tool": {"__rl": True, "mode": "id", "value": tool},
            "inputMode": "json",
            "jsonInput": json.dumps(arguments),
            "options": {},
        },
        "credentials": HEADER_AUTH,
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The MCP server (sandbox mode, one API key) and n8n in one namespace, n8n holding the key
    as Header Auth credentials (Authorization: Bearer <key>)."""
    folder = tmp_path_factory.mktemp("n8n-mcp")
    with Netns() as ns:
        url, process = ns.enter(mcp_http(folder, CONNECTOR_API_KEYS=KEY))
        n8n = N8n(ns, folder / "user", extensions=None)
        data = {"name": "Authorization", "value": f"Bearer {KEY}"}
        credentials = [{**HEADER_AUTH["httpHeaderAuth"], "type": "httpHeaderAuth", "data": data}]
        n8n.import_file("credentials", "credentials.json", credentials)
        n8n.url, n8n.mcp_output = url, process.output
        yield n8n


def a_device(lab) -> dict:
    """A tenant and a device that may publish on telemetry, made with the SDK's client."""

    async def scenario(client):
        tenant = await client.call_tool(
            "createTenant", {**APP, "name": "Farm", "maxClients": 2, "maxMessages": 100}
        )
        device = await client.call_tool(
            "createClient",
            {
                **APP,
                "tenantId": tenant.structured_content["id"],
                "type": "device",
                "name": "pump",
                "provisioningId": "n8n-pump-1",
                "pubTopics": ["telemetry"],
            },
        )
        return {
            "tenantId": tenant.structured_content["id"],
            "clientId": device.structured_content["id"],
        }

    return lab.ns.run(over_http, lab.url, scenario, KEY)


def test_the_mcp_client_node_publishes_and_reads_the_message_back(lab):
    one = {**APP, **a_device(lab)}
    message = {**one, "id": 7, "type": "pub", "topic": "telemetry", "payload": "21.5", "qos": 1}
    lab.import_file(
        "workflow",
        "mcp-flow.json",
        workflow(
            "mcpflow1",
            START,
            mcp_client_node("Publish", lab.url, "publishMessage", message),
            mcp_client_node("Read", lab.url, "getMessages", one),
        ),
    )
    ok, data, printed = lab.execute("mcpflow1")
    assert ok, printed[-3000:]
    (published,) = items(data, "Publish")
    message_id = published["json"]["structuredContent"]["messageId"]
    (read,) = items(data, "Read")
    messages = read["json"]["structuredContent"]["items"]
    assert [(m["id"], m["topic"], m["payload"]) for m in messages] == [
        (message_id, "telemetry", "21.5")
    ]
    # The key went as the credentials' header, and no log line of either side holds it.
    assert KEY not in lab.mcp_output() and "demo-secret" not in lab.mcp_output()
    assert KEY not in printed


def test_a_tool_error_fails_the_node_with_the_connectors_message(lab):
    bad = {**APP, "name": "Farm", "maxClients": -1, "maxMessages": 10}
    lab.import_file(
        "workflow",
        "mcp-bad.json",
        workflow("mcpbad1", START, mcp_client_node("Bad", lab.url, "createTenant", bad)),
    )
    ok, data, printed = lab.execute("mcpbad1")
    assert not ok
    # MCP Client 1.1 fails the node with the text of the isError result: the connector's error.
    assert "INVALID_FIELDS" in printed and "maxClients: Must be 0 or more." in printed
