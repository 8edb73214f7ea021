"""A whole InstaMsg account driven over real HTTP: gunicorn, two workers, INSTAMSG_SANDBOX=1."""

import base64
import os
import subprocess
import sys
import time

import pytest
import requests

from tests.support.servers import ROOT, free_port, gunicorn
from tests.support.upstream import APP
from tests.support.waiting import wait_until

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow


class Remote:
    """Block calls over HTTP; every call on a new connection, so both workers serve."""

    def __init__(self, base):
        self.base = base
        self.token = None

    def __call__(self, block, expect=200, **args):
        if self.token and block not in ("getAccessToken", "invalidateAccessToken"):
            args.setdefault("accessToken", self.token)
        answer = requests.post(
            f"{self.base}/blocks/{block}",
            json={"args": args},
            headers={"Connection": "close"},
            timeout=10,
        )
        assert answer.status_code == expect, (block, answer.text)
        return answer.json()["contextWrites"]["to"]


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    data = tmp_path_factory.mktemp("sandbox-data")
    env = {"INSTAMSG_SANDBOX": "1", "INSTAMSG_DATA_DIR": str(data)}
    with gunicorn(env, workers=2) as (base, process):
        yield Remote(base), data, process


def test_a_whole_account_over_http(account):
    call, _, _ = account
    wrong = call("getAccessToken", 401, clientKey="demo-key", clientSecret="nope")
    assert wrong["status_code"] == "API_ERROR"
    call.token = call("getAccessToken", **APP)["access_token"]

    # tenants
    tenant = call("createTenant", name="Farm", maxClients=2, maxMessages=3)["id"]
    assert call("getSingleTenant", id=tenant)["name"] == "Farm"
    call("updateTenant", id=tenant, description="north")
    assert any(t["id"] == tenant for t in call("getTenants"))
    scratch = call("createTenant", name="Scratch", maxClients=0, maxMessages=0)["id"]
    call("deleteTenant", id=scratch)
    call("getSingleTenant", 404, id=scratch)

    # clients, with topics; the client quota
    pump = call(
        "createClient",
        tenantId=tenant,
        type="device",
        name="pump",
        provisioningId="356938035643809",
        pubTopics=["telemetry"],
        subTopics="commands",
        gsmMsisdn="9876543210",
        gsmSendSms="1",
    )["id"]
    app_user = call(
        "createClient", tenantId=tenant, type="user", name="ops", provisioningId="ops-1"
    )["id"]
    quota = call("createClient", 403, tenantId=tenant, type="user", name="x", provisioningId="x")
    assert "max_clients" in quota["status_msg"]
    call("updateClient", tenantId=tenant, clientId=app_user, description="operator app")
    assert len(call("getClients", tenantId=tenant)) == 2
    assert call("getSingleClient", tenantId=tenant, clientId=pump)["sub_topics"] == ["commands"]

    # publishing: inside and outside pubTopics, the message quota, time windows
    before = int(time.time() * 1000) - 1
    message = {"tenantId": tenant, "clientId": pump, "type": "pub", "payload": "21.5", "qos": 2}
    first = call("publishMessage", **message, id=1, topic="telemetry")["messageId"]
    refused = call("publishMessage", 403, **message, id=2, topic="valves")
    assert "pub_topics" in refused["status_msg"]
    call("publishMessage", **{**message, "qos": 1}, id=3, topic="telemetry")
    call("publishMessage", **{**message, "qos": 1}, id=4, topic="telemetry")
    over = call("publishMessage", 403, **{**message, "qos": 1}, id=5, topic="telemetry")
    assert "max_messages" in over["status_msg"]
    after = int(time.time() * 1000) + 1
    listed = call("getMessages", tenantId=tenant, clientId=pump, start=before, end=after)
    assert [m["message_id"] for m in listed] == [1, 3, 4]
    assert call("getMessages", tenantId=tenant, clientId=pump, end=before) == []
    assert call("releaseMessage", tenantId=tenant, clientId=pump, messageId=first)["status"] == (
        "released"
    )

    # files: bytes identical both ways
    data = os.urandom(300_000)
    ids = {"tenantId": tenant, "clientId": pump, "filename": "firmware v2.bin"}
    uploaded = requests.post(
        f"{call.base}/blocks/uploadFile",
        data={**{k: v for k, v in ids.items()}, "accessToken": call.token},
        files={"file": ("local.bin", data, "application/octet-stream")},
        timeout=10,
    )
    assert uploaded.status_code == 200, uploaded.text
    assert call("getFiles", tenantId=tenant, clientId=pump)[0]["size"] == len(data)
    assert base64.b64decode(call("downloadFile", **ids)["content"]) == data
    streamed = requests.post(
        f"{call.base}/blocks/downloadFile?stream=1",
        json={**ids, "accessToken": call.token},
        timeout=10,
    )
    assert streamed.content == data
    call("deleteFile", **ids)
    call("downloadFile", 404, **ids)

    # config
    pair = {"tenantId": tenant, "clientId": pump}
    call("updateClientConfig", **pair, config={"PING_REQ_INTERVAL": 180})
    assert call("getClientConfig", **pair)["config"] == {"PING_REQ_INTERVAL": 180}
    call("deleteClientConfig", **pair)
    assert call("getClientConfig", **pair)["config"] == {}

    # tokens and certificates
    user = {"tenantId": tenant, "clientId": app_user}
    old = call("getClientAuthToken", **user)["auth_token"]
    assert call("updateClientAuthToken", **user)["auth_token"] != old
    call("updateClientCertificate", **pair)

    # what follows from all that
    logs = call("getClientLogs", **pair, level="WARN", creator="InstaMsg")
    assert any("valves" in entry["message"] for entry in logs)
    assert call("getClientSessions", **pair)[0]["messages"] == 3
    assert call("getClientNetworkLogs", **pair)[0]["imei"] == "356938035643809"
    metrics = call("getClientMetrics", **pair, interval="day")
    assert metrics["messages_published"] == 3
    assert call("getClientInfo", **pair)["state"] == "online"

    # deleting, then the token's end
    call("deleteClient", **user)
    call("getSingleClient", 404, **user)
    call("invalidateAccessToken", **APP, token=call.token)
    assert call("getTenants", 401)["upstream"]["status"] == 401


def test_state_is_shared_between_servers_and_survives_a_restart(tmp_path):
    env = {"INSTAMSG_SANDBOX": "1", "INSTAMSG_DATA_DIR": str(tmp_path)}
    with gunicorn(env, workers=2) as (first, process):
        call = Remote(first)
        call.token = call("getAccessToken", **APP)["access_token"]
        tenant = call("createTenant", name="Kept", maxClients=1, maxMessages=1)["id"]
        with gunicorn(env, workers=1) as (second, _):
            other = Remote(second)
            other.token = call.token
            assert other("getSingleTenant", id=tenant)["name"] == "Kept"
        output = process.output()
    assert output.count("SANDBOX MODE") == 1, output
    with gunicorn(env, workers=1) as (again, _):
        call.base = again
        assert call("getSingleTenant", id=tenant)["name"] == "Kept"


def test_the_standalone_sandbox_serves_a_live_mode_connector(tmp_path):
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port), "--data-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return requests.get(url + "/_sandbox/health", timeout=1)
            except requests.ConnectionError:
                return None

        wait_until(up, 10)
        env = {"INSTAMSG_SANDBOX": "0", "INSTAMSG_API_URL": url}
        with gunicorn(env, workers=1) as (base, _):
            call = Remote(base)
            call.token = call("getAccessToken", **APP)["access_token"]
            assert call("createTenant", name="Via socket", maxClients=1, maxMessages=1)["id"]
        reset = subprocess.run(
            [sys.executable, "-m", "sandbox", "--reset", "--data-dir", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "reset" in reset.stdout
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
