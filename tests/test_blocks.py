"""Every block sends exactly its documented request and shapes its documented result."""

import base64
import io
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import responses
from responses import matchers
from werkzeug.formparser import parse_form_data

from connector.registry import REGISTRY
from tests.conftest import TOKEN, UPSTREAM

BEARER = {"Authorization": f"Bearer {TOKEN}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"demo-key:demo-secret").decode()}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
APP = {"clientKey": "demo-key", "clientSecret": "demo-secret"}
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


def test_the_tables_cover_every_block_once():
    covered = [case.block for case in CASES] + ["uploadFile"]  # uploadFile: its own test below
    assert sorted(covered) == sorted(REGISTRY.names())
    assert len(REGISTRY) == 30


@pytest.fixture
def mocked():
    """InstaMsg mocked at requests' transport adapter: each registered answer must be asked
    for, and a request nothing was registered for fails with ConnectionError (no socket)."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def exact_body(expected):
    """A matcher for the whole body: JSON compared as data, anything else byte for byte."""
    if isinstance(expected, dict):
        return matchers.json_params_matcher(expected, strict_match=True)

    def match(request):
        body = request.body or b""
        if body == (expected if expected is not NO_BODY else b""):
            return True, ""
        return False, f"body {body!r} is not {expected!r}"

    return match


def exact_query(expected: dict):
    flat = {k: v[0] if len(v) == 1 else v for k, v in expected.items()}
    return matchers.query_param_matcher(flat, strict_match=True)


def reply_of(case) -> dict:
    reply = dict(case.reply)
    if "content_type" in reply:
        reply.setdefault("headers", {})["Content-Type"] = reply.pop("content_type")
    return reply


@pytest.mark.parametrize("case", CASES, ids=str)
def test_block_sends_its_documented_request(case, client, mocked):
    mocked.add(
        case.method,
        UPSTREAM + case.path,
        match=[
            exact_query(case.query),
            matchers.header_matcher({**case.headers, "Accept": "application/json"}),
            exact_body(case.body),
        ],
        **reply_of(case),
    )

    answer = client.post(f"/blocks/{case.block}", json={"args": case.args})

    assert answer.status_code == 200, answer.json
    assert len(mocked.calls) == 1
    sent = mocked.calls[0].request
    assert urlsplit(sent.url).path == case.path  # exactly as percent-encoded
    assert sent.headers["User-Agent"].startswith("instamsg-connector/")
    assert sent.headers["X-Request-Id"] == answer.headers["X-Request-Id"]
    expected = case.result if case.result is not None else case.reply["json"]
    assert answer.json == {"callback": "success", "contextWrites": {"to": expected}}


def test_a_responses_mock_intercepts_a_live_call_through_the_flask_test_client(app):
    from flask import Flask

    assert isinstance(app, Flask) and not app.extensions["instamsg"].settings.sandbox
    with responses.RequestsMock() as mock:
        mock.get(UPSTREAM + "/api/v1/tenants/t-1", json={"id": "t-1", "name": "mocked"})
        answer = app.test_client().post(
            "/blocks/getSingleTenant", json={"accessToken": TOKEN, "id": "t-1"}
        )
    assert answer.json["contextWrites"]["to"] == {"id": "t-1", "name": "mocked"}


def multipart(request):
    body = request.body if isinstance(request.body, bytes) else request.body.read()
    environ = {
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": request.headers["Content-Type"],
        "REQUEST_METHOD": "POST",
    }
    _, form, files = parse_form_data(environ)
    return form, files


def uploaded(expected_name: str, expected_bytes: bytes):
    """A matcher: exactly one multipart part, named uploadedfile, with this name and bytes."""

    def match(request):
        form, files = multipart(request)
        part = files.get("uploadedfile")
        if list(files) != ["uploadedfile"] or form:
            return False, f"parts {list(files)} and fields {list(form)}"
        if part.filename != expected_name:
            return False, f"filename {part.filename!r}"
        if part.read() != expected_bytes:
            return False, "the file's bytes differ"
        return True, ""

    return match


UPLOAD_PATH = CLIENT + "/files/photo%20one.jpg"
#: What the old hand-written body used as its fixed multipart boundary.
OLD_BOUNDARY_LINE = b"--instamsgconnector7e3fb0d9a1c24a5f"
UPLOADS = {
    "base64": bytes(range(256)) * 40,
    "multipart": bytes(range(256)) * 40,
    "the old boundary inside": b"before\r\n" + OLD_BOUNDARY_LINE + b"\r\nafter\r\n" * 3,
}


@pytest.mark.parametrize("how", UPLOADS)
def test_upload_file_sends_one_multipart_part_named_uploadedfile(how, client, mocked):
    data = UPLOADS[how]
    mocked.post(
        UPSTREAM + UPLOAD_PATH,
        json={"name": "photo one.jpg"},
        status=201,
        match=[matchers.header_matcher(BEARER), uploaded("photo one.jpg", data)],
    )
    args = {**C, "filename": "photo one.jpg"}
    if how == "multipart":
        answer = client.post(
            "/blocks/uploadFile",
            data={**args, "file": (io.BytesIO(data), "local-name.jpg", "image/jpeg")},
            content_type="multipart/form-data",
        )
    else:
        answer = client.post(
            "/blocks/uploadFile", json={**args, "fileContent": base64.b64encode(data).decode()}
        )

    assert answer.status_code == 200, answer.json
    assert answer.json["contextWrites"]["to"] == {"name": "photo one.jpg"}


def test_each_upload_has_its_own_random_boundary(client, mocked):
    mocked.post(UPSTREAM + UPLOAD_PATH, json={}, status=201)
    mocked.post(UPSTREAM + UPLOAD_PATH, json={}, status=201)
    for _ in range(2):
        client.post(
            "/blocks/uploadFile", json={**C, "filename": "photo one.jpg", "fileContent": "aGk="}
        )
    types = [call.request.headers["Content-Type"] for call in mocked.calls]
    assert all(t.startswith("multipart/form-data; boundary=") for t in types)
    assert types[0] != types[1] and OLD_BOUNDARY_LINE[2:].decode() not in types[0]


def test_a_quote_in_a_filename_is_escaped_in_its_part(client, mocked):
    mocked.post(
        UPSTREAM + CLIENT + "/files/a%22b.txt",
        json={},
        status=201,
        match=[uploaded('a"b.txt', b"hi")],
    )
    answer = client.post(
        "/blocks/uploadFile", json={**C, "filename": 'a"b.txt', "fileContent": "aGk="}
    )
    assert answer.status_code == 200, answer.json


@pytest.mark.parametrize("filename", ["evil\r\nX-Injected: 1.txt", "a\nb", "tab\there", "nul\x00"])
def test_a_filename_with_a_control_character_is_refused(filename, client, mocked):
    answer = client.post(
        "/blocks/uploadFile", json={**C, "filename": filename, "fileContent": "aGk="}
    )
    assert answer.status_code == 422
    error = answer.json["contextWrites"]["to"]
    assert error["status_code"] == "INVALID_FIELDS" and error["fields"] == ["filename"]
    assert error["errors"]["filename"] == [
        "Must not contain control characters (line breaks, tabs and the like)."
    ]
    assert len(mocked.calls) == 0
