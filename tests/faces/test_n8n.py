"""The generated n8n node in the real n8n (.ci/n8n: 2.41.1 on Node 24), against the connector in
sandbox mode, both in a network namespace with only loopback up (tests/support/netns.py).

Workflows are imported with n8n's CLI into a temporary N8N_USER_FOLDER and run with
`n8n execute --id`, which prints the run's data; the polling trigger runs in `n8n start` with its
workflow published, and what it emits is echoed by our own node to a second client, where the
test reads it back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from connector.generate import n8n as n8n_package
from tests.support.n8n_farm import Farm, calls_by_others
from tests.support.netns import Netns
from tests.support.servers import ROOT, address, free_port, gunicorn, stop
from tests.support.upstream import APP
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

N8N_VERSION = "2.41.1"
PACKAGE = ROOT / "integrations" / "n8n"
#: How often a test asks n8n again: each read runs n8n's CLI or the sandbox, seconds apart.
N8N_EVERY = 2
CREDENTIALS = {"instaMsgApi": {"id": "instamsg1", "name": "InstaMsg sandbox"}}
NODE = "CUSTOM.instaMsg"
TRIGGER = "CUSTOM.instaMsgTrigger"


def tool_paths() -> tuple[str, str]:
    """Node 24's folder and n8n's (each installed once per machine when missing)."""
    node = subprocess.run(
        ["bash", ".ci/node"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    n8n = subprocess.run(
        ["bash", ".ci/n8n"], cwd=ROOT, check=True, capture_output=True, text=True, timeout=1800
    ).stdout.strip()
    return node, n8n


class N8n:
    """The n8n CLI with its own user folder, our package as its custom extensions, nothing sent
    home, run on the namespace's thread."""

    def __init__(self, ns: Netns, folder: Path, extensions: Path | None = PACKAGE):
        node, n8n_bin = tool_paths()
        self.ns = ns
        self.command = str(Path(n8n_bin) / "n8n")
        self.env = {
            **os.environ,
            "PATH": f"{node}:{os.environ['PATH']}",
            "N8N_USER_FOLDER": str(folder),
            "N8N_DIAGNOSTICS_ENABLED": "false",
            "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
            "N8N_TEMPLATES_ENABLED": "false",
            "N8N_PERSONALIZATION_ENABLED": "false",
            # the registry of public MCP servers would look up api.n8n.io at start
            "N8N_DISABLED_MODULES": "mcp-registry",
            "N8N_LOG_LEVEL": "info",
            "N8N_PORT": str(free_port()),
            "N8N_RUNNERS_BROKER_PORT": str(free_port()),
            "N8N_LISTEN_ADDRESS": "127.0.0.1",
            "N8N_SECURE_COOKIE": "false",
            "GENERIC_TIMEZONE": "UTC",
        }
        if extensions is not None:
            self.env["N8N_CUSTOM_EXTENSIONS"] = str(extensions)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def cli(self, *args, timeout=180) -> subprocess.CompletedProcess:
        return self.ns.run(
            subprocess.run,
            [self.command, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def npm(self, *args, cwd) -> subprocess.CompletedProcess:
        done = self.ns.run(
            subprocess.run,
            ["npm", "--no-audit", "--no-fund", "--offline", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def import_credentials(self, base: str) -> None:
        """The sandbox demo app, as the credentials every node of these workflows uses."""
        data = {
            "baseUrl": base,
            "apiKey": "",
            "clientKey": "demo-key",
            "clientSecret": "demo-secret",
        }
        self.import_file(
            "credentials",
            "credentials.json",
            [{**CREDENTIALS["instaMsgApi"], "type": "instaMsgApi", "data": data}],
        )

    def version(self) -> str:
        return self.cli("--version").stdout.strip()

    def import_file(self, kind: str, name: str, document) -> None:
        path = self.folder / name
        path.write_text(json.dumps(document))
        done = self.cli(f"import:{kind}", f"--input={path}")
        assert done.returncode == 0, done.stdout + done.stderr

    def execute(self, workflow_id: str) -> tuple[bool, dict | None, str]:
        """Run a workflow: whether it succeeded, its run data by node, and what n8n printed."""
        done = self.cli("execute", f"--id={workflow_id}")
        printed = done.stdout + done.stderr
        marker = re.search(r"^={20,}$", done.stdout, re.M)
        data = None
        if marker:
            data = json.JSONDecoder().raw_decode(done.stdout[marker.end() :].lstrip())[0]
        return done.returncode == 0 and "Execution was successful" in printed, data, printed

    @contextmanager
    def server(self):
        """`n8n start`, until the block ends; yields the process (its output in a file)."""
        log = open(self.folder / "server.log", "w+b")  # noqa: SIM115 (closed below)
        process = self.ns.run(
            subprocess.Popen,
            [self.command, "start"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process, lambda: (log.seek(0), log.read().decode("utf-8", "replace"))[1]
        finally:
            stop(process)
            log.close()


def node(name, parameters, *, kind=NODE, **extra) -> dict:
    return {
        "id": name.lower(),
        "name": name,
        "type": kind,
        "typeVersion": 1,
        "position": [0, 0],
        "parameters": parameters,
        **({"credentials": CREDENTIALS} if kind in (NODE, TRIGGER) else {}),
        **extra,
    }


START = node("Start", {}, kind="n8n-nodes-base.manualTrigger")


def workflow(workflow_id: str, *nodes) -> dict:
    """A workflow running its nodes one after the other."""
    connections = {
        a["name"]: {"main": [[{"node": b["name"], "type": "main", "index": 0}]]}
        for a, b in zip(nodes, nodes[1:], strict=False)
    }
    return {
        "id": workflow_id,
        "name": workflow_id,
        "active": False,
        "settings": {"executionOrder": "v1"},
        "nodes": [{**n, "position": [i * 220, 0]} for i, n in enumerate(nodes)],
        "connections": connections,
    }


def items(data: dict, name: str) -> list[dict]:
    """The items a node put out, in the run data `n8n execute` printed."""
    runs = data["data"]["resultData"]["runData"][name]
    return runs[-1]["data"]["main"][0]


def tenant_and_client(topic="telemetry", *, name="pump") -> list[dict]:
    """createTenant then createClient, the second fed by the first's result."""
    return [
        node(
            "Tenant",
            {
                "resource": "tenants",
                "operation": "createTenant",
                "name": "Farm",
                "maxClients": 10,
                "maxMessages": 1000,
            },
        ),
        node(
            "Client",
            {
                "resource": "clients",
                "operation": "createClient",
                "tenantId": "={{ $json.id }}",
                "type": "device",
                "name": name,
                "provisioningId": f"={{{{ '{name}-' + $now.toMillis() + '-' + $execution.id }}}}",
                "additionalFields": {"pubTopics": [topic]},
            },
        ),
    ]


def publish_node(name, message_id, payload, **extra_fields) -> dict:
    """An n8n workflow node that publishes a message (it builds the node; it sends nothing)."""
    return node(
        name,
        {
            "resource": "messages",
            "operation": "publishMessage",
            "tenantId": "={{ $('Tenant').item.json.id }}",
            "clientId": "={{ $('Client').item.json.id }}",
            "type": "pub",
            "topic": "telemetry",
            "payload": payload,
            "qos": 1,
            "additionalFields": {"id": message_id, **extra_fields},
        },
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The connector (sandbox) and n8n, in one namespace; the sandbox demo app as credentials."""
    folder = tmp_path_factory.mktemp("n8n")
    env = {"INSTAMSG_SANDBOX": "1", "INSTAMSG_DATA_DIR": str(folder / "connector")}
    with Netns() as ns:
        base, connector = ns.enter(gunicorn(env))
        n8n = N8n(ns, folder / "user")
        n8n.base, n8n.connector, n8n.connector_env = base, connector, env
        n8n.import_credentials(base)
        yield n8n


def restart_connector(lab) -> None:
    """Stop the lab's connector as `make run` is stopped (SIGTERM to gunicorn, which lets its
    workers finish) and start it again on the same port and data directory. (The namespace
    closes the new one at the end, and stops the old one again: a no-op.)"""
    stop(lab.connector)
    base, lab.connector = lab.ns.enter(gunicorn(lab.connector_env, port=address(lab.base)[1]))
    assert base == lab.base


def test_only_loopback_is_up_where_n8n_runs(lab):
    links = lab.ns.links()
    assert re.findall(r"^\d+: (\S+):", links, re.M) == ["lo"]
    assert lab.version() == N8N_VERSION


def test_a_flow_passes_results_from_block_to_block(lab):
    lab.import_file(
        "workflow",
        "chain.json",
        workflow(
            "chain",
            START,
            # No sign-in field anywhere: the credential's app goes with every call.
            tenant_and_client()[0],
            # Only the name is given: the tenant's numbers are not sent, so they stay as they are.
            node(
                "Rename",
                {
                    "resource": "tenants",
                    "operation": "updateTenant",
                    "id": "={{ $json.id }}",
                    "updateFields": {"name": "Barn"},
                },
            ),
            tenant_and_client()[1],
            publish_node("Publish", 1, "21.5"),
            publish_node("Publish again", 2, "={{ 22 + 0.5 }}"),
            publish_node("Publish unsaved", 3, "not kept", save=False),
            node(
                "Messages",
                {
                    "resource": "messages",
                    "operation": "getMessages",
                    "tenantId": "={{ $('Tenant').item.json.id }}",
                    "clientId": "={{ $('Client').item.json.id }}",
                    "additionalFields": {"start": "2020-01-01T00:00:00", "type": "pub"},
                    "returnAll": True,
                },
            ),
            node(
                "First message",
                {
                    "resource": "messages",
                    "operation": "getMessages",
                    "tenantId": "={{ $('Tenant').item.json.id }}",
                    "clientId": "={{ $('Client').item.json.id }}",
                    "limit": 1,
                },
                executeOnce=True,
            ),
        ),
    )
    ok, data, printed = lab.execute("chain")
    assert ok, printed[-3000:]
    tenant = items(data, "Tenant")[0]["json"]
    # Optional arguments left out are not sent: no description, as InstaMsg stores it.
    assert tenant["name"] == "Farm" and tenant["max_clients"] == 10
    assert tenant["description"] is None
    renamed = items(data, "Rename")[0]["json"]
    assert renamed["name"] == "Barn" and renamed["id"] == tenant["id"]
    assert (renamed["max_clients"], renamed["max_messages"]) == (10, 1000)
    client = items(data, "Client")[0]["json"]
    assert client["tenant_id"] == tenant["id"] and client["pub_topics"] == ["telemetry"]
    assert items(data, "Publish")[0]["json"] == {"messageId": "1"}
    # A list is one item per element; save, never touched, kept its default (true), and the
    # one published with save=false is not stored.
    messages = [item["json"] for item in items(data, "Messages")]
    assert [(m["message_id"], m["payload"], m["topic"]) for m in messages] == [
        (1, "21.5", "telemetry"),
        (2, "22.5", "telemetry"),
    ]
    # Return All off: Limit keeps the first of them.
    assert [item["json"]["message_id"] for item in items(data, "First message")] == [1]


def test_a_file_goes_up_and_comes_back_as_binary_data(lab):
    text = "hello from n8n\n"
    lab.import_file(
        "workflow",
        "files.json",
        workflow(
            "files",
            START,
            *tenant_and_client(),
            node(
                "Text",
                {
                    "mode": "manual",
                    "assignments": {
                        "assignments": [
                            {"id": "t1", "name": "text", "value": text, "type": "string"}
                        ]
                    },
                },
                kind="n8n-nodes-base.set",
                typeVersion=3.4,
            ),
            node(
                "To file",
                {
                    "operation": "toText",
                    "sourceProperty": "text",
                    "options": {"fileName": "notes.txt"},
                },
                kind="n8n-nodes-base.convertToFile",
                typeVersion=1.1,
            ),
            node(
                "Upload",
                {
                    "resource": "files",
                    "operation": "uploadFile",
                    "tenantId": "={{ $('Tenant').item.json.id }}",
                    "clientId": "={{ $('Client').item.json.id }}",
                    "filename": "={{ $binary.data.fileName }}",
                    "file": "data",
                },
            ),
            node(
                "Download",
                {
                    "resource": "files",
                    "operation": "downloadFile",
                    "tenantId": "={{ $('Tenant').item.json.id }}",
                    "clientId": "={{ $('Client').item.json.id }}",
                    "filename": "={{ $json.filename }}",
                },
            ),
            node(
                "Read",
                {"operation": "text", "destinationKey": "text"},
                kind="n8n-nodes-base.extractFromFile",
                typeVersion=1.1,
            ),
        ),
    )
    ok, data, printed = lab.execute("files")
    assert ok, printed[-3000:]
    uploaded = items(data, "Upload")[0]["json"]
    assert uploaded["filename"] == "notes.txt" and uploaded["size"] == len(text)
    assert uploaded["contentType"].startswith("text/plain")
    downloaded = items(data, "Download")[0]
    assert sorted(downloaded["json"]) == ["contentType", "filename", "size"]
    assert downloaded["json"]["filename"] == "notes.txt"
    assert downloaded["json"]["size"] == len(text)
    assert downloaded["json"]["contentType"].startswith("text/plain")
    assert downloaded["binary"]["data"]["fileName"] == "notes.txt"
    assert items(data, "Read")[0]["json"]["text"] == text


def test_a_packed_tarball_installs_and_warnings_reach_the_items(lab, tmp_path):
    """The package as users install it from a tarball (README), generated here from a newer
    manifest: createTenant takes an argument this connector does not know, so the connector
    answers with a warning, which the item keeps."""
    manifest = n8n_package.load_manifest()
    tenant = next(b for b in manifest["blocks"] if b["name"] == "createTenant")
    tenant["args"].append({"name": "colour", "type": "String", "info": "A colour."})
    n8n_package.write(tmp_path / "package", manifest)
    other = N8n(lab.ns, tmp_path / "user", extensions=None)
    other.npm("pack", "--pack-destination", str(tmp_path), cwd=tmp_path / "package")
    (tarball,) = tmp_path.glob("n8n-nodes-instamsg-*.tgz")
    custom = tmp_path / "user" / ".n8n" / "custom"
    custom.mkdir(parents=True)
    other.npm("install", "--ignore-scripts", "--legacy-peer-deps", str(tarball), cwd=custom)
    other.import_credentials(lab.base)
    made = tenant_and_client()[0]
    made["parameters"]["additionalFields"] = {"colour": "blue", "description": "barn"}
    other.import_file("workflow", "warned.json", workflow("warned", START, made))
    ok, data, printed = other.execute("warned")
    assert ok, printed[-3000:]
    (item,) = items(data, "Tenant")
    assert item["json"]["name"] == "Farm" and item["json"]["description"] == "barn"
    # The operation is named as the form names it, not by its block name.
    assert item["json"]["warnings"] == [
        '"colour" is not an argument of "Create Tenant"; it was ignored.'
    ]


def bad_client(name="Bad client", **extra) -> dict:
    return node(
        name,
        {
            "resource": "clients",
            "operation": "createClient",
            "tenantId": "={{ $('Tenant').item.json.id }}",
            "type": "device",
            "name": "pump",
            "provisioningId": "bad-1",
            "additionalFields": {"gsmMsisdn": "12ab"},
        },
        **extra,
    )


def test_a_bad_argument_fails_the_node_with_the_connectors_message(lab):
    lab.import_file(
        "workflow", "bad.json", workflow("bad", START, tenant_and_client()[0], bad_client())
    )
    ok, data, printed = lab.execute("bad")
    assert not ok
    assert "gsmMsisdn" in printed
    assert "Request failed with status code" not in printed
    error = data["data"]["resultData"]["error"]
    assert "gsmMsisdn" in error["message"] and error["httpCode"] == "422"
    assert "INVALID_FIELDS" in error["description"]


def test_continue_on_fail_carries_the_error_envelope_on_either_output(lab):
    lab.import_file(
        "workflow",
        "bad-continue.json",
        workflow(
            "badcontinue",
            START,
            tenant_and_client()[0],
            bad_client(onError="continueRegularOutput"),
            bad_client("Bad client again", onError="continueErrorOutput"),
        ),
    )
    ok, data, printed = lab.execute("badcontinue")
    assert ok, printed[-3000:]
    error = items(data, "Bad client")[0]["json"]["error"]
    assert error["status_code"] == "INVALID_FIELDS"
    assert error["fields"] == ["gsmMsisdn"] and "gsmMsisdn" in error["status_msg"]
    regular, failed = data["data"]["resultData"]["runData"]["Bad client again"][-1]["data"]["main"]
    assert regular == [] and failed[0]["json"]["error"]["fields"] == ["gsmMsisdn"]


# -- Idempotency Key -------------------------------------------------------------------------------

# The same on both publish nodes of one execution: the second is a retry of the first.
KEY = "={{ 'n8n-' + $execution.id }}"


def keyed_publish(name, message_id, payload, key=KEY) -> dict:
    made = publish_node(name, message_id, payload)
    return {**made, "parameters": {**made["parameters"], "options": {"idempotencyKey": key}}}


def test_the_same_idempotency_key_twice_publishes_one_message(lab):
    lab.import_file(
        "workflow",
        "keyed.json",
        workflow(
            "keyed",
            START,
            *tenant_and_client(name="keyed"),
            keyed_publish("Publish", 1, "21.5"),
            keyed_publish("Publish again", 1, "21.5"),
            node(
                "Messages",
                {
                    "resource": "messages",
                    "operation": "getMessages",
                    "tenantId": "={{ $('Tenant').item.json.id }}",
                    "clientId": "={{ $('Client').item.json.id }}",
                    "additionalFields": {"start": "2020-01-01T00:00:00"},
                },
            ),
        ),
    )
    ok, data, printed = lab.execute("keyed")
    assert ok, printed[-3000:]
    (first,) = [item["json"] for item in items(data, "Publish")]
    (again,) = [item["json"] for item in items(data, "Publish again")]
    assert first["messageId"] and "idempotentReplayed" not in first
    assert again == {**first, "idempotentReplayed": True}
    messages = [item["json"] for item in items(data, "Messages")]
    assert [(m["id"], m["message_id"], m["payload"]) for m in messages] == [
        (first["messageId"], 1, "21.5")
    ]


def test_outcome_unknown_fails_the_node_with_the_connectors_message(lab):
    # The sandbox answers the next publish with a 500 after reading it: the connector cannot
    # tell whether it took effect, so it does not send it again, and the key answers
    # OUTCOME_UNKNOWN (502) from then on.
    rule = {"method": "POST", "path": "*/messages", "fault": "500", "times": 1}
    added = lab.ns.run(requests.post, f"{lab.base}/_sandbox/faults", json=rule, timeout=30)
    assert added.status_code in (200, 201), added.text
    lab.import_file(
        "workflow",
        "unknown.json",
        workflow(
            "unknown", START, *tenant_and_client(name="cut"), keyed_publish("Publish", 1, "x")
        ),
    )
    ok, data, printed = lab.execute("unknown")
    assert not ok
    error = data["data"]["resultData"]["error"]
    assert error["httpCode"] == "502"
    assert "may or may not have reached InstaMsg" in error["message"]
    assert "OUTCOME_UNKNOWN" in error["description"]


def test_retry_on_fail_never_sends_a_publish_twice_without_a_key_set(lab):
    """No Idempotency Key set: the node sends one of its own, the same on n8n's retry of the
    item. The sandbox answers the publish with a 500 after reading it, so the connector cannot
    know whether it took effect; n8n's Retry On Fail then sends the item again, and the key
    makes the connector refuse to send it a second time (OUTCOME_UNKNOWN) rather than
    publish it twice."""
    rule = {"method": "POST", "path": "*/messages", "fault": "500", "times": 1}
    added = lab.ns.run(requests.post, f"{lab.base}/_sandbox/faults", json=rule, timeout=30)
    assert added.status_code in (200, 201), added.text
    publish = node(
        "Publish",
        publish_node("Publish", 1, "once")["parameters"],
        retryOnFail=True,
        maxTries=2,
        waitBetweenTries=0,
    )
    lab.import_file(
        "workflow",
        "retried.json",
        workflow("retried", START, *tenant_and_client(name="retried"), publish),
    )
    ok, data, printed = lab.execute("retried")
    assert not ok
    error = data["data"]["resultData"]["error"]
    assert error["httpCode"] == "502" and "OUTCOME_UNKNOWN" in error["description"]


def test_the_readmes_first_flow_runs_twice_as_written(lab):
    """The README's first n8n flow is examples/first-flow.json: the README names its values,
    and it runs again without a change (a fixed provisioning ID was refused the second time)."""
    flow = json.loads((PACKAGE / "examples" / "first-flow.json").read_text())
    readme = " ".join((ROOT / "README.md").read_text().split())
    params = {n["name"]: n["parameters"] for n in flow["nodes"]}
    for said, where, name, value in [
        ("Name `Farm`, Max Clients `10`, Max Messages `1000`", "Tenant", "maxClients", 10),
        (
            "Provisioning ID `pump-{{ $now.toMillis() }}`",
            "Client",
            "provisioningId",
            "=pump-{{ $now.toMillis() }}",
        ),
        (
            'Payload `{"temperature": 21.5, "unit": "C"}`',
            "Publish",
            "payload",
            '{"temperature": 21.5, "unit": "C"}',
        ),
        ("Topic `telemetry`", "Publish", "topic", "telemetry"),
    ]:
        assert said in readme
        assert params[where][name] == value
    lab.import_file("workflow", "first-flow.json", {**flow, "id": "firstflow", "active": False})
    for _ in range(2):
        ok, data, printed = lab.execute("firstflow")
        assert ok, printed[-3000:]
        (published,) = [item["json"] for item in items(data, "Publish")]
        (message,) = [item["json"] for item in items(data, "Messages")]
        # The next node gets the payload as an object, the text kept, the time in ISO 8601,
        # and the ID releaseMessage takes under the name publishMessage answered it with.
        assert message["payload_json"] == {"temperature": 21.5, "unit": "C"}
        assert message["payload"] == '{"temperature": 21.5, "unit": "C"}'
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message["created_at_iso"])
        assert message["messageId"] == message["id"] == published["messageId"]
        # No ID was given: the node picked one from the call's key.
        assert 1 <= message["message_id"] <= 65535


# -- the polling trigger ---------------------------------------------------------------------------

#: How often the polling trigger polls in these tests (seconds). Users pick a minute or more;
#: a minute apart, each wait of a test was a minute. n8n 2.41.1 refuses one cron that fires
#: more than once a minute ("The polling interval is too short": its isSubMinuteCron takes
#: any seconds field but a lone number for one), but runs every entry of Poll Times: one
#: custom cron per POLL_SECONDS-th second of the minute is a poll every POLL_SECONDS.
POLL_SECONDS = 5
POLL_TIMES = {
    "item": [
        {"mode": "custom", "cronExpression": f"{second} * * * * *"}
        for second in range(0, 60, POLL_SECONDS)
    ]
}
#: How long an echo may take to reach the sink: a few polls, far above the one it needs (a
#: bound against hanging, not a measure of speed).
ECHO_WAIT = 60


def ready(process, output, timeout=120):
    """Wait for `n8n start` to say its editor is up."""
    deadline = time.monotonic() + timeout
    while "Editor is now accessible" not in output():
        assert process.poll() is None, output()[-3000:]
        assert time.monotonic() < deadline, output()[-3000:]
        time.sleep(1)


def polls(lab) -> int:
    """How many getMessages calls the connector has answered for the trigger (the test's
    own reads are left out)."""
    return calls_by_others(lab.connector.output(), "getMessages")


def live(lab, process, output, seconds=150):
    """Wait for `n8n start` to be up and its published trigger to have polled once. n8n
    2.41.1 activates published workflows through its publication service, which logs no
    "Activated workflow" line; the first poll is what matters anyway: it marks where the list
    of messages ends, so a message sent before it would never be new. Only this test's
    trigger is active while it runs."""
    before = polls(lab)
    ready(process, output)
    wait_until(
        lambda: polls(lab) > before,
        seconds,
        every=1,
        explain=lambda: "the trigger never polled\n" + output()[-3000:],
    )


def wait_for(read, expected, output, seconds):
    """Wait until ``read()`` answers ``expected``; else fail with what it answers and n8n's log."""
    wait_until(
        lambda: read() == expected,
        seconds,
        every=N8N_EVERY,
        explain=lambda: f"{read()!r}, not {expected!r}\n{output()[-3000:]}",
    )


def echo(farm: Farm, payload: str) -> dict:
    """The workflow step that publishes ``payload`` (an expression) from the farm's sink."""
    return node(
        "Echo",
        {
            "resource": "messages",
            "operation": "publishMessage",
            "tenantId": farm.tenant,
            "clientId": farm.sink,
            "type": "pub",
            "topic": "seen",
            "payload": payload,
            "qos": 1,
        },
    )


def test_the_trigger_emits_each_new_message_once_across_polls_and_a_restart(lab):
    farm = Farm(lab, source_topics=["telemetry", "other"])
    farm.say("before activation")
    flow = workflow(
        "watch",
        node(
            "New message",
            {
                "tenantId": farm.tenant,
                "clientId": farm.source,
                "topic": "telemetry",
                "pollTimes": POLL_TIMES,
            },
            kind=TRIGGER,
        ),
        echo(farm, "={{ $json.payload }}"),
    )
    lab.import_file("workflow", "watch.json", flow)
    published = lab.cli("publish:workflow", "--id=watch")
    assert published.returncode == 0, published.stdout + published.stderr

    def sink_has(expected, output):
        wait_for(lambda: sorted(farm.echoes()), sorted(expected), output, ECHO_WAIT)

    with lab.server() as (process, output):
        live(lab, process, output)
        farm.say("first")
        farm.say("elsewhere", topic="other")
        sink_has(["first"], output)
        farm.say("second")
        farm.say("third")
        sink_has(["first", "second", "third"], output)
    # Stopped: what comes meanwhile is emitted once n8n is back, and nothing twice.
    farm.say("while stopped")
    expected = ["first", "second", "third", "while stopped"]
    with lab.server() as (process, output):
        live(lab, process, output)
        sink_has(expected, output)
        # Two more polls: anything the first emitted again has been echoed by the second.
        polled = polls(lab)
        wait_until(lambda: polls(lab) >= polled + 2, ECHO_WAIT, every=1)
        assert sorted(farm.echoes()) == sorted(expected), output()[-3000:]
    # The later tests of this module start n8n too: this trigger stays out of their way.
    unpublished = lab.cli("unpublish:workflow", "--id=watch")
    assert unpublished.returncode == 0, unpublished.stdout + unpublished.stderr


class Editor:
    """n8n's own REST API, as its editor uses it, signed in as the owner it sets up."""

    def __init__(self, lab, port):
        self.lab, self.base = lab, f"http://127.0.0.1:{port}/rest"
        self.session = requests.Session()
        self.session.headers["browser-id"] = "tests"  # n8n ties its cookie to the browser

    def call(self, method, path, body=None):
        response = self.lab.ns.run(
            self.session.request, method, self.base + path, json=body, timeout=60
        )
        assert response.status_code == 200, (path, response.status_code, response.text[:2000])
        return response.json()["data"]

    def sign_up(self):
        owner = {
            "email": "owner@example.com",
            "firstName": "Test",
            "lastName": "Owner",
            "password": "Test-Password-1",
        }
        self.call("POST", "/owner/setup", owner)

    def set_up_owner(self):
        """The owner, set up unless an earlier test of this n8n did (n8n refuses a second)."""
        status = self.lab.ns.run(self.session.get, self.base + "/settings", timeout=60)
        assert status.status_code == 200, status.text[:2000]
        if status.json()["data"]["userManagement"]["showSetupOnFirstLoad"]:
            self.sign_up()


def search(editor, kind, method, parameters, text=None) -> list[dict]:
    """A resource locator's list search, as the editor asks for it when From List opens."""
    body = {
        "nodeTypeAndVersion": {"name": kind, "version": 1},
        "path": "parameters.tenantId",
        "methodName": method,
        "currentNodeParameters": parameters,
        "credentials": {"instaMsgApi": CREDENTIALS["instaMsgApi"]},
        **({"filter": text} if text is not None else {}),
    }
    return editor.call("POST", "/dynamic-node-parameters/resource-locator-results", body)["results"]


def test_the_editor_tests_credentials_runs_the_trigger_and_activates_it(lab):
    farm = Farm(lab)
    farm.say("older")
    farm.say("latest")
    lab.import_file(
        "workflow",
        "latest.json",
        workflow(
            "latest",
            node(
                "New message",
                {"tenantId": farm.tenant, "clientId": farm.source, "pollTimes": POLL_TIMES},
                kind=TRIGGER,
            ),
            echo(farm, "={{ 'test: ' + $json.payload }}"),
        ),
    )

    def credential_test(editor, **data):
        fields = {"baseUrl": lab.base, "apiKey": "", "clientKey": "", "clientSecret": "", **data}
        # The stored credentials, tried with other values, as the editor does before saving.
        document = {**CREDENTIALS["instaMsgApi"], "type": "instaMsgApi", "data": fields}
        return editor.call("POST", "/credentials/test", {"credentials": document})

    with lab.server() as (process, output):
        ready(process, output)
        editor = Editor(lab, lab.env["N8N_PORT"])
        editor.sign_up()
        # The credential test is a real call with what every operation sends: it passes with
        # the app's key and secret...
        assert credential_test(editor, **APP)["status"] == "OK"
        wrong = credential_test(editor, clientKey="demo-key", clientSecret="wrong")
        assert wrong["status"] == "Error" and "HTTP 401" in wrong["message"]
        half = credential_test(editor, clientKey="demo-key")
        assert half["status"] == "Error" and "HTTP 422" in half["message"]
        # ...and fails for a credential no operation can run with: the URL alone.
        alone = credential_test(editor)
        assert alone["status"] == "Error" and "Client Secret" in alone["message"]
        elsewhere = credential_test(editor, baseUrl="http://127.0.0.1:9", **APP)
        assert elsewhere["status"] == "Error"

        # From List: the resource locators list the sandbox's tenants, then the chosen tenant's
        # clients, in the node and in the trigger (which has no input to drag an ID from).
        for kind in (NODE, TRIGGER):
            tenants = search(editor, kind, "searchTenants", {"resource": "messages"})
            assert {"name": f"Farm ({farm.tenant})", "value": farm.tenant} in tenants
            # The typed filter narrows it, by name or ID.
            assert search(editor, kind, "searchTenants", {}, farm.tenant) == [
                {"name": f"Farm ({farm.tenant})", "value": farm.tenant}
            ]
            chosen = {"tenantId": {"__rl": True, "mode": "list", "value": farm.tenant}}
            clients = search(editor, kind, "searchClients", chosen)
            assert sorted(c["value"] for c in clients) == sorted([farm.source, farm.sink])
            assert search(editor, kind, "searchClients", chosen, "sour") == [
                {"name": f"source ({farm.source})", "value": farm.source}
            ]
            # No tenant chosen yet: no clients to offer (rather than an error).
            assert search(editor, kind, "searchClients", {}) == []

        # The editor's test run of the trigger emits the latest message.
        started = editor.call(
            "POST", "/workflows/latest/run", {"triggerToStartFrom": {"name": "New message"}}
        )
        assert started["executionId"]
        wait_for(farm.echoes, ["test: latest"], output, 60)

        # Activated by the user: nothing older is emitted, what comes next is; deactivated and
        # activated again, what came while it was off is not emitted either.
        # n8n applies a publication in the background: wait until its triggers are live (or
        # gone), as the editor's status shows.
        def live_version():
            status = editor.call("GET", "/workflows/latest/publication-status")
            return None if status["status"] == "in_progress" else status["liveVersionId"]

        def activate():
            version = editor.call("GET", "/workflows/latest")["versionId"]
            editor.call("POST", "/workflows/latest/activate", {"versionId": version})
            wait_for(live_version, version, output, 60)

        def deactivate():
            editor.call("POST", "/workflows/latest/deactivate", {})
            wait_for(live_version, None, output, 60)

        activate()
        farm.say("after activation")
        wait_for(farm.echoes, ["test: latest", "test: after activation"], output, ECHO_WAIT)
        deactivate()
        farm.say("while off")
        activate()
        farm.say("back on")
        expected = ["test: latest", "test: after activation", "test: back on"]
        wait_for(farm.echoes, expected, output, ECHO_WAIT)


# -- the editor in Chromium ------------------------------------------------------------------------

#: Where the editor's screenshots are kept when its test fails (CI keeps the folder).
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / "n8n-editor"
OWNER = {"email": "owner@example.com", "password": "Test-Password-1"}


def drive_editor(port, shots: Path) -> dict:
    """Sign in, open the credential's form and the Publish step's form, as a user would; runs
    on the namespace's thread, so Chromium (a child of Playwright's driver) shares its
    loopback. Answers what the forms showed; screenshots go to ``shots``."""
    from tests.support.browser import ARGS, CHROMIUM, playwright_api

    sync_api = playwright_api()
    base = f"http://127.0.0.1:{port}"
    seen: dict = {}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        expect = sync_api.expect
        try:
            page.goto(f"{base}/signin")
            page.locator("input[type=email], input[name=emailOrLdapLoginId]").first.fill(
                OWNER["email"]
            )
            page.locator("input[type=password]").first.fill(OWNER["password"])
            page.get_by_role("button", name=re.compile("sign in", re.I)).click()
            page.wait_for_url(re.compile(r"/home|/workflow"), timeout=60_000)

            page.goto(f"{base}/home/credentials/{CREDENTIALS['instaMsgApi']['id']}")
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text("Connector URL")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(shots / "credential.png"))
            seen["credential"] = dialog.inner_text()
            seen["docs"] = dialog.get_by_role("link", name="docs").get_attribute("href")
            seen["icon"] = dialog.locator("img[src*='instamsg']").count()

            # The test behind Save is a real call: a wrong secret fails it, with our message.
            # The password fields are the Connector API Key and the Client Secret, in order.
            secrets = dialog.locator("input[type=password]")
            expect(secrets).to_have_count(2)
            secret = secrets.nth(1)
            secret.fill("not-the-secret")
            dialog.get_by_role("button", name="Save").click()
            refused = dialog.get_by_text(re.compile("Couldn.t connect with these settings"))
            expect(refused).to_be_visible(timeout=60_000)
            # Its details are the credential's own message for a 401.
            dialog.get_by_text("More details").click()
            page.screenshot(path=str(shots / "credential-refused.png"))
            expect(page.get_by_text(re.compile(r"Refused \(HTTP 401\)")).first).to_be_visible()
            secret.fill("demo-secret")
            dialog.get_by_role("button", name="Save").click()
            expect(dialog.get_by_text(re.compile("tested successfully", re.I))).to_be_visible(
                timeout=60_000
            )
            page.screenshot(path=str(shots / "credential-tested.png"))
            page.keyboard.press("Escape")

            # An operation's form: the first flow's Publish step.
            page.goto(f"{base}/workflow/editorflow")
            step = page.locator("[data-test-id=canvas-node]").filter(has_text="Publish")
            expect(step).to_be_visible(timeout=60_000)
            seen["canvas"] = step.inner_text()
            step.dblclick()
            expect(page.get_by_text("Additional Fields")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(shots / "publish-form.png"))
            # The form's labels, and the values its inputs and selects show.
            values = page.locator("input").evaluate_all("inputs => inputs.map(i => i.value)")
            seen["publish"] = page.locator("body").inner_text() + "\n" + "\n".join(values)
            seen["node docs"] = page.get_by_role("link", name="Docs").get_attribute("href")
            page.keyboard.press("Escape")

            # n8n's node panel finds the node by its codex aliases, and lists its actions.
            found = {}
            page.screenshot(path=str(shots / "canvas.png"))
            listed = page.locator("[data-test-id=node-creator]")
            for word in ("iot", "mqtt", "telemetry"):
                page.mouse.click(700, 250)  # an empty spot: the canvas has the keyboard
                page.keyboard.press("n")  # n8n 2.x: N browses the nodes
                expect(listed).to_be_visible(timeout=30_000)
                listed.locator("input").first.fill(word)
                expect(listed.get_by_text("InstaMsg").first).to_be_visible(timeout=30_000)
                found[word] = listed.inner_text()
                page.screenshot(path=str(shots / f"search-{word}.png"))
                page.keyboard.press("Escape")
                expect(listed).to_be_hidden(timeout=30_000)
            seen["search"] = found
        except Exception:
            page.screenshot(path=str(shots / "failed.png"))
            raise
        finally:
            browser.close()
    return seen


def test_the_editor_in_chromium_shows_the_credential_and_an_operation_form(lab, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    flow = json.loads((PACKAGE / "examples" / "first-flow.json").read_text())
    lab.import_file("workflow", "editor-flow.json", {**flow, "id": "editorflow", "active": False})
    try:
        with lab.server() as (process, output):
            ready(process, output)
            Editor(lab, lab.env["N8N_PORT"]).set_up_owner()
            seen = lab.ns.run(drive_editor, lab.env["N8N_PORT"], shots)
        text = seen["credential"]
        for label in ("Connector URL", "Connector API Key", "Client Key", "Client Secret"):
            assert label in text
        assert seen["docs"] == n8n_package.CREDENTIAL_DOCS_URL
        assert seen["icon"] >= 1
        # The canvas says what the step does; its form names options in words.
        assert "Publish a message" in seen["canvas"]
        form = seen["publish"]
        for shown in ("Tenant", "Client", "Publish on a topic (pub)", "At most once (1)"):
            assert shown in form
        # No sign-in field in the operation; the rarely used settings under Options.
        for absent in ("Access Token", "Client Key", "Client Secret", "Idempotency Key"):
            assert absent not in form
        assert "Options" in form and "Additional Fields" in form
        # Searching "iot", "mqtt" or "telemetry" finds the node (n8n reads the codex's alias).
        assert set(seen["search"]) == {"iot", "mqtt", "telemetry"}
        # n8n adds its own query to the node's Docs link; the page is ours.
        assert seen["node docs"].split("?")[0] == n8n_package.DOCS_URL
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copyfile(shot, ARTIFACTS / shot.name)
        raise
