"""Every block sends exactly its documented request and shapes its documented result."""

import base64
import io
from urllib.parse import urlsplit

import pytest
import responses
from responses import matchers
from werkzeug.formparser import parse_form_data

from connector import jsonx
from connector.engine.registry import REGISTRY
from tests.support.block_cases import (
    BEARER,
    CASES,
    CLIENT,
    NO_BODY,
    C,
)
from tests.support.upstream import INSTAMSG, TOKEN


def test_the_tables_cover_every_block_once():
    covered = [case.block for case in CASES] + ["uploadFile"]  # uploadFile: its own test below
    assert sorted(covered) == sorted(REGISTRY.names())
    assert len(REGISTRY) == 30


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
        INSTAMSG + case.path,
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
        mock.get(INSTAMSG + "/api/v1/tenants/t-1", json={"id": "t-1", "name": "mocked"})
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
        INSTAMSG + UPLOAD_PATH,
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
    mocked.post(INSTAMSG + UPLOAD_PATH, json={}, status=201)
    mocked.post(INSTAMSG + UPLOAD_PATH, json={}, status=201)
    for _ in range(2):
        client.post(
            "/blocks/uploadFile", json={**C, "filename": "photo one.jpg", "fileContent": "aGk="}
        )
    types = [call.request.headers["Content-Type"] for call in mocked.calls]
    assert all(t.startswith("multipart/form-data; boundary=") for t in types)
    assert types[0] != types[1] and OLD_BOUNDARY_LINE[2:].decode() not in types[0]


def test_a_quote_in_a_filename_is_escaped_in_its_part(client, mocked):
    mocked.post(
        INSTAMSG + CLIENT + "/files/a%22b.txt",
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


# -- getMessages: what a flow needs next, beside InstaMsg's own fields -------------------------

DEEP = "[" * (jsonx.MAX_DEPTH + 1) + "]" * (jsonx.MAX_DEPTH + 1)


@pytest.mark.parametrize(
    "payload, parsed",
    [
        ('{"temperature": 21.5, "unit": "C"}', {"temperature": 21.5, "unit": "C"}),
        (" [1, 2]", [1, 2]),
        # Only objects and arrays: a number or a string stays text, as it was published.
        ("21.5", None),
        ('"quoted"', None),
        ('{"broken": ', None),
        ("", None),
        # Deeper than any answer may nest: left as text, not a RecursionError.
        (DEEP, None),
    ],
    ids=["object", "array", "number", "string", "broken", "empty", "too deep"],
)
def test_get_messages_answers_the_payload_as_an_object_and_the_time_in_iso(
    payload, parsed, client, mocked
):
    listed = {"id": "7", "message_id": 3, "payload": payload, "created_at": 1795697050272}
    mocked.add("GET", INSTAMSG + CLIENT + "/messages", json=[listed])
    answer = client.post("/blocks/getMessages", json={"args": C})
    assert answer.status_code == 200, answer.json
    (message,) = answer.json["contextWrites"]["to"]
    assert message == {
        **listed,  # InstaMsg's own fields, as they are
        "messageId": "7",  # what releaseMessage takes, under its name
        "payload_json": parsed,
        "created_at_iso": "2026-11-26T12:44:10.272Z",
    }


@pytest.mark.parametrize("created_at", [None, "yesterday", True, 10**20])
def test_a_message_time_that_is_not_one_has_no_iso_form(created_at, client, mocked):
    mocked.add("GET", INSTAMSG + CLIENT + "/messages", json=[{"id": "7", "created_at": created_at}])
    (message,) = client.post("/blocks/getMessages", json={"args": C}).json["contextWrites"]["to"]
    assert message["created_at_iso"] is None and message["created_at"] == created_at
