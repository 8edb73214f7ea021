"""The per-block table: for every block, arguments a caller gives and the exact request
InstaMsg must receive (tests/blocks/test_blocks.py asserts them; tests/e2e/test_fuzz.py starts
from them)."""

import base64
from dataclasses import dataclass, field

from tests.support.upstream import APP, TOKEN

BEARER = {"Authorization": f"Bearer {TOKEN}"}
BASIC = {
    "Authorization": "Basic "
    + base64.b64encode(f"{APP['clientKey']}:{APP['clientSecret']}".encode()).decode()
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
T = {"accessToken": TOKEN, "tenantId": "t-1"}
C = {**T, "clientId": "c-9"}
CLIENT = "/api/v1/tenants/t-1/clients/c-9"
NO_BODY = object()
NOV25 = 1_764_064_800_000  # 2025-11-25T10:00:00Z in milliseconds


@dataclass
class Case:
    block: str
    args: dict
    method: str
    path: str
    query: dict = field(default_factory=dict)
    body: object = NO_BODY
    headers: dict = field(default_factory=lambda: dict(BEARER))
    reply: dict = field(default_factory=lambda: {"json": {"ok": 1}})
    result: object = None

    def __str__(self):
        return self.block


FULL_CLIENT_ARGS = {
    "type": "DEVICE",
    "name": "Pump 7",
    "description": "north field",
    "subTopics": "cmd, ota",
    "pubTopics": ["telemetry", "alerts"],
    "secureCertEnabled": "false",
    "provisioningId": "00:1B:44:11:3A:B7",
    "provisioningKey": "Key0123",
    "gsmMsisdn": "9876543210",
    "gsmApn": "iot.example",
    "gsmUsername": "apnuser",
    "gsmPassword": "apnpass",
    "gsmSimPin": "4321",
    "gsmSendSms": "1",
    "gsmIsdCode": "+91",
}
FULL_CLIENT_BODY = {
    "type": "device",
    "name": "Pump 7",
    "description": "north field",
    "sub_topics": ["cmd", "ota"],
    "pub_topics": ["telemetry", "alerts"],
    "secure_cert_enabled": False,
    "provisioning_params": {
        "provisioning_id": "00:1B:44:11:3A:B7",
        "provisioning_key": "Key0123",
        "gsm_msisdn": "9876543210",
        "gsm_apn": "iot.example",
        "gsm_username": "apnuser",
        "gsm_password": "apnpass",
        "gsm_sim_pin": "4321",
        "gsm_send_sms": "1",
        "gsm_isd_code": "+91",
    },
}

CASES = [
    Case(
        "getAccessToken",
        APP,
        "POST",
        "/oauth2/token",
        query={"grant_type": ["client_credentials"]},
        body=b"",
        headers={**BASIC, **FORM},
        reply={"json": {"access_token": "abc", "token_type": "bearer", "expires_in": 3600}},
    ),
    Case(
        "invalidateAccessToken",
        {**APP, "token": "old-token-1"},
        "POST",
        "/oauth2/invalidate_token",
        query={"access_token": ["old-token-1"]},
        body=b"",
        headers={**BASIC, **FORM},
    ),
    Case(
        "createTenant",
        {"accessToken": TOKEN, "name": "Company 1", "maxClients": "10", "maxMessages": 10000},
        "POST",
        "/api/v1/tenants",
        body={"name": "Company 1", "max_clients": 10, "max_messages": 10000},
    ),
    Case(
        "getTenants",
        {"accessToken": TOKEN, "active": "true", "sortBy": "name", "sortOrder": "DESC"},
        "GET",
        "/api/v1/tenants",
        query={"active": ["1"], "sort_by": ["name"], "sort_order": ["desc"]},
    ),
    Case(
        "getSingleTenant",
        {"accessToken": TOKEN, "id": "a/../b"},
        "GET",
        "/api/v1/tenants/a%2F..%2Fb",
    ),
    Case(
        "updateTenant",
        {"accessToken": TOKEN, "id": "t-1", "maxMessages": "500", "description": ""},
        "PUT",
        "/api/v1/tenants/t-1",
        body={"max_messages": 500},
    ),
    Case("deleteTenant", {"accessToken": TOKEN, "id": "t 1"}, "DELETE", "/api/v1/tenants/t%201"),
    Case(
        "createClient",
        {**T, **FULL_CLIENT_ARGS},
        "POST",
        "/api/v1/tenants/t-1/clients",
        body=FULL_CLIENT_BODY,
        reply={"json": {"id": "c-9"}, "status": 201},
    ),
    Case(
        "getClients",
        {**T, "type": "user", "secure": False, "state": "online"},
        "GET",
        "/api/v1/tenants/t-1/clients",
        query={"type": ["user"], "secure": ["0"], "state": ["online"]},
    ),
    Case("getSingleClient", C, "GET", CLIENT),
    Case(
        "updateClient",
        {**C, "pubTopics": '["a","b"]', "gsmSendSms": "0", "secureCertEnabled": "yes"},
        "PUT",
        CLIENT,
        body={
            "pub_topics": ["a", "b"],
            "secure_cert_enabled": True,
            "provisioning_params": {"gsm_send_sms": "0"},
        },
    ),
    Case("deleteClient", C, "DELETE", CLIENT),
    Case("getClientAuthToken", C, "GET", CLIENT + "/auth_token"),
    Case("getClientInfo", C, "GET", CLIENT + "/info"),
    Case(
        "getClientNetworkLogs",
        {
            **C,
            "start": "2025-11-25T10:00:00Z",
            "end": 1764068400,
            "macId": "001B44113AB7",
            "imei": "356938035643809",
            "msisdn": "9876543210",
            "iccid": "8991101200003204510",
            "sortBy": "ts",
            "sortOrder": "asc",
        },
        "GET",
        CLIENT + "/network_logs",
        query={
            "start": [str(NOV25)],
            "end": [str(NOV25 + 3_600_000)],
            "mac_id": ["001B44113AB7"],
            "imei": ["356938035643809"],
            "msisdn": ["9876543210"],
            "iccid": ["8991101200003204510"],
            "sort_by": ["ts"],
            "sort_order": ["asc"],
        },
    ),
    Case(
        "getClientSessions",
        {**C, "start": "2025-11-25", "end": "2025-11-25 10:00"},
        "GET",
        CLIENT + "/sessions",
        query={"start": [str(NOV25 - 36_000_000)], "end": [str(NOV25)]},
    ),
    Case(
        "getClientMetrics",
        {**C, "interval": "Month"},
        "GET",
        CLIENT + "/metrics",
        query={"interval": ["month"]},
    ),
    Case(
        "getClientLogs",
        {**C, "start": NOV25, "end": str(NOV25), "level": "warn", "creator": "instamsg"},
        "GET",
        CLIENT + "/logs",
        query={
            "start": [str(NOV25)],
            "end": [str(NOV25)],
            "level": ["WARN"],
            "creator": ["InstaMsg"],
        },
    ),
    Case("updateClientAuthToken", C, "PUT", CLIENT + "/reset_auth_token", body={}),
    Case("updateClientCertificate", C, "PUT", CLIENT + "/reset_certificate", body={}),
    Case("getFiles", C, "GET", CLIENT + "/files"),
    Case(
        "downloadFile",
        {**C, "filename": "report 1.txt"},
        "GET",
        CLIENT + "/files/report%201.txt",
        reply={"body": b"hello\x00bytes", "content_type": "text/plain"},
        result={
            "filename": "report 1.txt",
            "contentType": "text/plain",
            "size": 11,
            "content": base64.b64encode(b"hello\x00bytes").decode(),
        },
    ),
    Case("deleteFile", {**C, "filename": "old.bin"}, "DELETE", CLIENT + "/files/old.bin"),
    Case("getClientConfig", C, "GET", CLIENT + "/config"),
    Case(
        "updateClientConfig",
        {**C, "config": '{"PING_REQ_INTERVAL": 180, "MEDIA_STREAMING_ENABLED": 1}'},
        "PUT",
        CLIENT + "/config",
        body={"config": {"PING_REQ_INTERVAL": 180, "MEDIA_STREAMING_ENABLED": 1}},
    ),
    Case("deleteClientConfig", C, "DELETE", CLIENT + "/config"),
    Case(
        "publishMessage",
        {**C, "id": "17", "type": "pub", "topic": "telemetry", "payload": "21.5C", "qos": "1"},
        "POST",
        CLIENT + "/messages",
        body={
            "id": 17,
            "type": "pub",
            "topic": "telemetry",
            "payload": "21.5C",
            "qos": 1,
            "duplicate": 0,
            "save": 1,
        },
        reply={"status": 201, "headers": {"Location": CLIENT + "/messages/m-42"}, "body": b""},
        result={"messageId": "m-42"},
    ),
    Case(
        "getMessages",
        {**C, "start": "2025-11-25T11:00:00+01:00", "end": NOV25 + 1000, "type": "P2P"},
        "GET",
        CLIENT + "/messages",
        query={"start": [str(NOV25)], "end": [str(NOV25 + 1000)], "type": ["p2p"]},
    ),
    Case(
        "releaseMessage",
        {**C, "messageId": "m-42"},
        "PUT",
        CLIENT + "/messages/m-42/release",
        body={},
    ),
]
