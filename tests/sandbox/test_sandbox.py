"""The sandbox enforces what InstaMsg enforces, and injects the faults it is asked to.

These run the connector with INSTAMSG_SANDBOX=1 in-process (no socket), so they
also cover the in-process transport; the sandbox app is called directly where
the point is the sandbox itself."""

import base64

import pytest
import requests

from app import create_app
from connector.upstream.sandbox import SANDBOX_URL
from sandbox.app import create_sandbox_app
from sandbox.store import Store
from tests.support.upstream import APP


class Flow:
    """Calls blocks on a sandbox-mode connector and returns (HTTP status, result)."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def __call__(self, block, expect=200, **args):
        if (
            self.token
            and "accessToken" not in args
            and block
            not in (
                "getAccessToken",
                "invalidateAccessToken",
            )
        ):
            args["accessToken"] = self.token
        answer = self.client.post(f"/blocks/{block}", json=args)
        assert answer.status_code == expect, answer.json
        return answer.json["contextWrites"]["to"]

    def login(self):
        self.token = self("getAccessToken", **APP)["access_token"]
        return self

    def tenant(self, **overrides):
        args = {"name": "Acme", "maxClients": 5, "maxMessages": 100, **overrides}
        return self("createTenant", **args)["id"]

    def device(self, tenant, **overrides):
        args = {
            "tenantId": tenant,
            "type": "device",
            "name": "pump",
            "provisioningId": overrides.pop("provisioningId", "356938035643809"),
            "pubTopics": "telemetry",
            **overrides,
        }
        return self("createClient", **args)["id"]


@pytest.fixture
def sandbox_app(tmp_path):
    return create_app({"sandbox": True, "data_dir": str(tmp_path), "api_url": SANDBOX_URL})


@pytest.fixture
def flow(sandbox_app):
    return Flow(sandbox_app.test_client()).login()


def test_wrong_credentials_are_refused(sandbox_app):
    flow = Flow(sandbox_app.test_client())
    error = flow("getAccessToken", 401, clientKey="demo-key", clientSecret="wrong")
    assert error["status_code"] == "API_ERROR" and error["upstream"]["status"] == 401


def test_an_unknown_or_revoked_token_is_refused(flow):
    assert flow("getTenants", 401, accessToken="made-up")["upstream"]["status"] == 401
    flow("getTenants")
    flow("invalidateAccessToken", **APP, token=flow.token)
    assert "revoked" in flow("getTenants", 401)["status_msg"]


def test_an_expired_token_is_refused(tmp_path):
    app = create_app({"sandbox": True, "data_dir": str(tmp_path), "sandbox_token_ttl": 1})
    flow = Flow(app.test_client()).login()
    flow("getTenants")
    store = Store(tmp_path / "sandbox.sqlite3")
    store.conn.execute("UPDATE tokens SET expires_at = 0")
    assert flow("getTenants", 401)["upstream"]["status"] == 401


def test_tenant_crud_with_partial_update_and_404(flow):
    tenant = flow.tenant(description="first")
    assert flow("getSingleTenant", id=tenant)["description"] == "first"
    updated = flow("updateTenant", id=tenant, maxClients=9)
    assert updated["max_clients"] == 9 and updated["description"] == "first"
    assert [t["id"] for t in flow("getTenants", active=True)] == [tenant]
    assert flow("getTenants", active=False) == []
    flow("deleteTenant", id=tenant)
    assert flow("getSingleTenant", 404, id=tenant)["upstream"]["status"] == 404


def test_tenants_are_private_to_their_app(tmp_path):
    app = create_app(
        {
            "sandbox": True,
            "data_dir": str(tmp_path),
            "sandbox_apps": {"demo-key": "demo-secret", "k2": "s2"},
        }
    )
    first = Flow(app.test_client()).login()
    tenant = first.tenant()
    second = Flow(app.test_client())
    second.token = second("getAccessToken", clientKey="k2", clientSecret="s2")["access_token"]
    second("getSingleTenant", 404, id=tenant)


def test_client_crud_topics_tokens_and_certificate(flow):
    tenant = flow.tenant()
    user = flow.device(tenant, type="user", provisioningId="user-1", gsmPassword="pw123")
    shown = flow("getSingleClient", tenantId=tenant, clientId=user)
    assert shown["type"] == "user" and shown["pub_topics"] == ["telemetry"]
    assert "gsm_password" not in shown["provisioning_params"]
    flow("updateClient", tenantId=tenant, clientId=user, subTopics="a,b", description="d")
    shown = flow("getSingleClient", tenantId=tenant, clientId=user)
    assert shown["sub_topics"] == ["a", "b"] and shown["pub_topics"] == ["telemetry"]
    token = flow("getClientAuthToken", tenantId=tenant, clientId=user)["auth_token"]
    fresh = flow("updateClientAuthToken", tenantId=tenant, clientId=user)["auth_token"]
    assert fresh != token
    assert flow("getClientAuthToken", tenantId=tenant, clientId=user)["auth_token"] == fresh
    before = flow("getClientInfo", tenantId=tenant, clientId=user)["certificate_fingerprint"]
    flow("updateClientCertificate", tenantId=tenant, clientId=user)
    after = flow("getClientInfo", tenantId=tenant, clientId=user)["certificate_fingerprint"]
    assert before != after
    device = flow.device(tenant, provisioningId="dev-2")
    assert flow("getClientAuthToken", 400, tenantId=tenant, clientId=device)["upstream"]["status"]
    assert [c["id"] for c in flow("getClients", tenantId=tenant, type="device")] == [device]
    flow("deleteClient", tenantId=tenant, clientId=device)
    flow("getSingleClient", 404, tenantId=tenant, clientId=device)


def test_a_provisioning_id_is_unique(flow):
    tenant = flow.tenant()
    flow.device(tenant, provisioningId="same")
    error = flow(
        "createClient", 409, tenantId=tenant, type="device", name="b", provisioningId="same"
    )
    assert "already exists" in error["status_msg"]


def test_the_client_quota_is_enforced(flow):
    tenant = flow.tenant(maxClients=1)
    flow.device(tenant, provisioningId="one")
    error = flow(
        "createClient", 403, tenantId=tenant, type="device", name="two", provisioningId="two"
    )
    assert "max_clients" in error["status_msg"]


def device_publish(flow, tenant, client, expect=200, **overrides):
    """A publish as ``client`` of ``tenant`` in the sandbox flow, expecting ``expect``."""
    args = {"id": 1, "type": "pub", "topic": "telemetry", "payload": "21.5", "qos": 1}
    return flow("publishMessage", expect, tenantId=tenant, clientId=client, **{**args, **overrides})


def test_publishing_needs_a_permitted_topic_and_is_logged_either_way(flow):
    tenant = flow.tenant()
    client = flow.device(tenant)
    error = device_publish(flow, tenant, client, 403, topic="secret")
    assert "pub_topics" in error["status_msg"] and "updateClient" in error["status_msg"]
    assert device_publish(flow, tenant, client)["messageId"]
    warnings = flow("getClientLogs", tenantId=tenant, clientId=client, level="WARN")
    assert len(warnings) == 1 and "secret" in warnings[0]["message"]
    by_client = flow("getClientLogs", tenantId=tenant, clientId=client, creator="client")
    assert [entry["level"] for entry in by_client] == ["DEBUG"]
    flow("updateClient", tenantId=tenant, clientId=client, pubTopics="telemetry,secret")
    device_publish(flow, tenant, client, topic="secret", id=2)


def test_the_message_quota_is_enforced(flow):
    tenant = flow.tenant(maxMessages=2)
    client = flow.device(tenant)
    device_publish(flow, tenant, client, id=1)
    device_publish(flow, tenant, client, id=2)
    error = device_publish(flow, tenant, client, 403, id=3)
    assert "max_messages" in error["status_msg"]
    errors = flow("getClientLogs", tenantId=tenant, clientId=client, level="ERROR")
    assert len(errors) == 1


def test_messages_by_time_window_and_type(flow, monkeypatch):
    import sandbox.activity as activity

    tenant = flow.tenant()
    client = flow.device(tenant, pubTopics="a")
    times = iter([1_700_000_000_000, 1_700_000_100_000, 1_700_000_200_000])
    monkeypatch.setattr(activity, "now_ms", lambda: next(times))
    for ident, kind in ((1, "pub"), (2, "p2p"), (3, "pub")):
        device_publish(
            flow, tenant, client, id=ident, type=kind, topic="a" if kind == "pub" else client
        )
    monkeypatch.undo()
    window = flow(
        "getMessages", tenantId=tenant, clientId=client, start=1_700_000_050, end="1700000250000"
    )
    assert [m["message_id"] for m in window] == [2, 3]
    pubs = flow("getMessages", tenantId=tenant, clientId=client, type="pub")
    assert [m["message_id"] for m in pubs] == [1, 3]


def test_unsaved_messages_count_but_are_not_listed(flow):
    tenant = flow.tenant()
    client = flow.device(tenant)
    device_publish(flow, tenant, client, save=False)
    assert flow("getMessages", tenantId=tenant, clientId=client) == []
    metrics = flow("getClientMetrics", tenantId=tenant, clientId=client)
    assert metrics["messages_published"] == 1 and metrics["messages_stored"] == 0


def test_in_flight_ids_and_release(flow):
    tenant = flow.tenant()
    client = flow.device(tenant)
    held = device_publish(flow, tenant, client, id=7, qos=2)["messageId"]
    assert "in flight" in device_publish(flow, tenant, client, 409, id=7, qos=2)["status_msg"]
    device_publish(flow, tenant, client, id=7, qos=2, duplicate=True)
    flow("releaseMessage", tenantId=tenant, clientId=client, messageId=held)
    assert flow("releaseMessage", 409, tenantId=tenant, clientId=client, messageId=held)
    flow("releaseMessage", 404, tenantId=tenant, clientId=client, messageId="999")
    delivered = device_publish(flow, tenant, client, id=8, qos=1)["messageId"]
    flow("releaseMessage", 409, tenantId=tenant, clientId=client, messageId=delivered)


def test_sessions_network_logs_and_metrics_follow_from_publishing(flow):
    tenant = flow.tenant()
    client = flow.device(tenant, provisioningId="00:1B:44:11:3A:B7", gsmMsisdn="9876543210")
    assert flow("getClientSessions", tenantId=tenant, clientId=client) == []
    assert flow("getClientInfo", tenantId=tenant, clientId=client)["state"] == "offline"
    device_publish(flow, tenant, client, id=1, payload="abcd")
    device_publish(flow, tenant, client, id=2, payload="ef")
    sessions = flow("getClientSessions", tenantId=tenant, clientId=client)
    assert len(sessions) == 1 and sessions[0]["messages"] == 2
    network = flow("getClientNetworkLogs", tenantId=tenant, clientId=client, msisdn="9876543210")
    assert network[0]["mac_id"] == "001B44113AB7"
    assert flow("getClientNetworkLogs", tenantId=tenant, clientId=client, imei="1") == []
    metrics = flow("getClientMetrics", tenantId=tenant, clientId=client, interval="month")
    assert metrics["messages_published"] == 2 and metrics["payload_bytes"] == 6
    assert metrics["sessions"] == 1 and metrics["interval"] == "month"
    info = flow("getClientInfo", tenantId=tenant, clientId=client)
    assert info["state"] == "online" and info["messages_published"] == 2


def test_files_round_trip_byte_for_byte(flow, sandbox_app):
    tenant = flow.tenant()
    client = flow.device(tenant)
    data = bytes(range(256)) * 300
    ids = {"tenantId": tenant, "clientId": client, "filename": "fw v2.bin"}
    flow("uploadFile", **ids, fileContent=base64.b64encode(data).decode())
    listed = flow("getFiles", tenantId=tenant, clientId=client)
    assert listed[0]["filename"] == "fw v2.bin" and listed[0]["size"] == len(data)
    assert base64.b64decode(flow("downloadFile", **ids)["content"]) == data
    raw = sandbox_app.test_client().post(
        "/blocks/downloadFile?stream=1", json={**ids, "accessToken": flow.token}
    )
    assert raw.data == data
    flow("deleteFile", **ids)
    flow("downloadFile", 404, **ids)
    flow("deleteFile", 404, **ids)


def test_config_get_replace_delete(flow):
    tenant = flow.tenant()
    client = flow.device(tenant)
    ids = {"tenantId": tenant, "clientId": client}
    assert flow("getClientConfig", **ids)["config"] == {}
    flow("updateClientConfig", **ids, config={"PING_REQ_INTERVAL": 180})
    flow("updateClientConfig", **ids, config='{"BUSINESS_LOGIC_INTERVAL": 420}')
    assert flow("getClientConfig", **ids)["config"] == {"BUSINESS_LOGIC_INTERVAL": 420}
    flow("deleteClientConfig", **ids)
    flow("deleteClientConfig", 404, **ids)


def test_deleting_a_tenant_removes_its_clients(flow):
    tenant = flow.tenant()
    client = flow.device(tenant)
    flow("deleteTenant", id=tenant)
    flow("getSingleClient", 404, tenantId=tenant, clientId=client)


def test_sorting(flow):
    for name in ("b", "a", "c"):
        flow.tenant(name=name)
    names = [t["name"] for t in flow("getTenants", sortBy="name", sortOrder="desc")]
    assert names == ["c", "b", "a"]
    # A field the list cannot be sorted by is refused before it leaves the connector.
    refused = flow("getTenants", 422, sortBy="password")
    assert refused["status_code"] == "INVALID_FIELDS" and refused["fields"] == ["sortBy"]


# -- fault injection ------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path):
    return create_sandbox_app(Store(tmp_path / "s.sqlite3")).test_client()


def token_of(sandbox):
    basic = base64.b64encode(b"demo-key:demo-secret").decode()
    answer = sandbox.post(
        "/oauth2/token?grant_type=client_credentials", headers={"Authorization": f"Basic {basic}"}
    )
    return {"Authorization": "Bearer " + answer.json["access_token"]}


@pytest.mark.parametrize(
    "fault, status, header",
    [
        ("429", 429, "Retry-After"),
        ("500", 500, None),
        ("503", 503, "Retry-After"),
        ("html", 502, None),
    ],
)
def test_a_fault_by_header(sandbox, fault, status, header):
    answer = sandbox.get("/api/v1/tenants", headers={"X-Sandbox-Fault": fault})
    assert answer.status_code == status
    if header:
        assert answer.headers[header] == "1"
    if fault == "html":
        assert answer.mimetype == "text/html" and "<title>" in answer.get_data(as_text=True)


def test_fault_rules_strike_the_chosen_calls_so_many_times(sandbox):
    auth = token_of(sandbox)
    rule = {
        "method": "GET",
        "path": "/api/v1/tenants*",
        "fault": "429",
        "times": 2,
        "retry_after": 7,
    }
    assert sandbox.post("/_sandbox/faults", json=rule).status_code == 201
    assert sandbox.post("/api/v1/tenants", json={}, headers=auth).status_code == 400  # not chosen
    first = sandbox.get("/api/v1/tenants", headers=auth)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert sandbox.get("/api/v1/tenants/x", headers=auth).status_code == 429
    assert sandbox.get("/api/v1/tenants", headers=auth).status_code == 200
    assert sandbox.get("/_sandbox/faults").json[0]["remaining"] == 0
    sandbox.delete("/_sandbox/faults")
    assert sandbox.get("/_sandbox/faults").json == []


def test_a_bad_fault_rule_is_refused(sandbox):
    assert sandbox.post("/_sandbox/faults", json={"fault": "explode"}).status_code == 400


def test_slow_answers_and_timeouts_through_the_connector(tmp_path):
    app = create_app({"sandbox": True, "data_dir": str(tmp_path), "read_timeout": 0.3})
    client = app.test_client()
    client.post("/_sandbox/faults", json={"fault": "slow", "delay": 0.1, "times": 1})
    assert client.post("/blocks/getAccessToken", json=APP).status_code == 200
    client.post("/_sandbox/faults", json={"fault": "slow", "delay": 5, "times": 1})
    answer = client.post("/blocks/getAccessToken", json=APP)
    assert answer.status_code == 504
    assert answer.json["contextWrites"]["to"]["status_code"] == "UPSTREAM_TIMEOUT"


@pytest.mark.parametrize(
    "fault, status, code",
    [
        ("drop", 502, "UPSTREAM_UNAVAILABLE"),
        ("503", 502, "API_ERROR"),
        ("429", 429, "API_ERROR"),
        ("html", 502, "API_ERROR"),
        ("500", 502, "API_ERROR"),
    ],
)
def test_each_fault_reaches_the_caller_as_its_documented_error(tmp_path, fault, status, code):
    app = create_app({"sandbox": True, "data_dir": str(tmp_path), "retries": 0})
    client = app.test_client()
    client.post("/_sandbox/faults", json={"fault": fault, "path": "/oauth2/token", "times": 1})
    answer = client.post("/blocks/getAccessToken", json=APP)
    assert answer.status_code == status
    assert answer.json["contextWrites"]["to"]["status_code"] == code
    assert client.post("/blocks/getAccessToken", json=APP).status_code == 200


def test_a_passing_fault_is_absorbed_by_a_retry(tmp_path):
    app = create_app({"sandbox": True, "data_dir": str(tmp_path), "retry_base": 0.001})
    client = app.test_client()
    client.post("/_sandbox/faults", json={"fault": "503", "path": "/api/v1/tenants", "times": 2})
    token = client.post("/blocks/getAccessToken", json=APP).json["contextWrites"]["to"]
    answer = client.post("/blocks/getTenants", json={"accessToken": token["access_token"]})
    assert answer.status_code == 200
    assert client.get("/_sandbox/faults").json[0]["remaining"] == 0


def test_a_dropped_connection_over_a_real_socket(tmp_path):
    import threading

    from werkzeug.serving import make_server

    server = make_server(
        "127.0.0.1", 0, create_sandbox_app(Store(tmp_path / "s.sqlite3")), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(
                f"http://127.0.0.1:{server.server_port}/api/v1/tenants",
                headers={"X-Sandbox-Fault": "drop"},
                timeout=5,
            )
    finally:
        server.shutdown()


def test_reset_empties_the_sandbox(flow, sandbox_app):
    flow.tenant()
    sandbox_app.test_client().post("/_sandbox/reset")
    flow("getTenants", 401)


@pytest.mark.parametrize("secret", ["\x80", "s\u00e9cret", "\u65e5\u672c"])
def test_a_non_ascii_secret_is_a_wrong_secret_not_a_crash(secret, tmp_path):
    from app import create_app

    client = create_app({"sandbox": True, "data_dir": str(tmp_path)}).test_client()
    answer = client.post(
        "/blocks/getClients",
        json={"tenantId": "0", "clientKey": "demo-key", "clientSecret": secret},
    )
    assert answer.status_code == 401
    assert answer.json["contextWrites"]["to"]["upstream"]["status"] == 401
