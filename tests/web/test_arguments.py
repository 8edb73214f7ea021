"""Arguments as flow builders and webhook callers send them: query strings, PHP-style list
keys, JSON under a form content type, the stream switch in a body, and warnings that name
every argument a block ignored."""

import json

import pytest
from responses import matchers

from tests.support.upstream import INSTAMSG, TOKEN

TENANTS = INSTAMSG + "/api/v1/tenants"
CLIENT = INSTAMSG + "/api/v1/tenants/t-1/clients/c-1"


def test_a_misspelled_optional_argument_is_named_in_the_warnings(client, mocked, capfd):
    mocked.post(TENANTS, status=201, json={"id": "t-1"})
    args = {"accessToken": TOKEN, "name": "n", "maxClients": 1, "maxMessages": 1}
    answer = client.post("/blocks/createTenant", json={**args, "descripton": "hello"})
    assert answer.status_code == 200
    assert answer.json["warnings"] == [
        '"descripton" is not an argument of createTenant; did you mean "description"?'
    ]
    assert json.loads(mocked.calls[0].request.body) == {
        "name": "n",
        "max_clients": 1,
        "max_messages": 1,
    }
    access = [json.loads(line) for line in capfd.readouterr().err.splitlines() if "request" in line]
    assert access[-1]["ignored_args"] == ["descripton"]
    assert "hello" not in json.dumps(access[-1])


@pytest.mark.parametrize(
    "extra, warning",
    [
        ({"Name": "x"}, '"Name" is not an argument of getSingleTenant; it was ignored.'),
        (
            {"ID": "x"},
            '"ID" is not an argument of getSingleTenant; names are case-sensitive: did you '
            'mean "id"?',
        ),
        (
            {"accesToken": "x"},
            '"accesToken" is not an argument of getSingleTenant; did you mean "accessToken"?',
        ),
        ({"event": "x"}, '"event" is not an argument of getSingleTenant; it was ignored.'),
    ],
)
def test_warnings_hint_by_case_or_by_edit_distance(extra, warning, client, mocked):
    mocked.get(TENANTS + "/t-1", json={"id": "t-1"})
    answer = client.post(
        "/blocks/getSingleTenant", json={"accessToken": TOKEN, "id": "t-1", **extra}
    )
    assert answer.json["warnings"] == [warning]


def test_an_answer_without_ignored_arguments_has_no_warnings(client, mocked):
    mocked.get(TENANTS + "/t-1", json={"id": "t-1"})
    answer = client.post("/blocks/getSingleTenant", json={"accessToken": TOKEN, "id": "t-1"})
    assert "warnings" not in answer.json


def test_error_envelopes_carry_the_warnings_too(client, mocked):
    answer = client.post("/blocks/getSingleTenant", json={"accessToken": TOKEN, "Id": "t-1"})
    assert answer.status_code == 422
    assert answer.json["warnings"] == [
        '"Id" is not an argument of getSingleTenant; names are case-sensitive: did you mean "id"?'
    ]


def test_a_whole_webhook_payload_names_at_most_twenty_ignored_arguments(client, mocked):
    mocked.get(TENANTS + "/t-1", json={})
    payload = {f"field{i:02d}": i for i in range(25)}
    answer = client.post(
        "/blocks/getSingleTenant", json={"accessToken": TOKEN, "id": "t-1", **payload}
    )
    assert len(answer.json["warnings"]) == 21
    assert answer.json["warnings"][-1] == "5 more arguments were ignored."


def test_php_style_list_keys_are_read_as_the_list(client, mocked):
    mocked.put(CLIENT, json={}, match=[matchers.json_params_matcher({"pub_topics": ["a", "b"]})])
    body = f"accessToken={TOKEN}&tenantId=t-1&clientId=c-1&pubTopics[]=a&pubTopics[]=b"
    answer = client.post(
        "/blocks/updateClient", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert answer.status_code == 200, answer.json
    assert "warnings" not in answer.json


def test_a_single_php_style_list_key_is_still_a_list(client, mocked):
    mocked.put(CLIENT, json={}, match=[matchers.json_params_matcher({"pub_topics": ["a"]})])
    body = f"accessToken={TOKEN}&tenantId=t-1&clientId=c-1&pubTopics[]=a"
    answer = client.post(
        "/blocks/updateClient", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert answer.status_code == 200, answer.json


def test_arguments_in_the_query_string_of_a_post_are_read(client, mocked):
    mocked.get(TENANTS, json=[], match=[matchers.query_param_matcher({"active": "1"})])
    answer = client.post(f"/blocks/getTenants?accessToken={TOKEN}&active=true")
    assert answer.status_code == 200, answer.json


def test_the_body_wins_over_the_query_string(client, mocked):
    mocked.get(TENANTS + "/from-body", json={})
    answer = client.post(
        f"/blocks/getSingleTenant?accessToken={TOKEN}&id=from-query", json={"id": "from-body"}
    )
    assert answer.status_code == 200, answer.json


def test_a_get_with_arguments_is_told_to_post(client, mocked):
    answer = client.get(f"/blocks/getTenants?accessToken={TOKEN}")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, HEAD, OPTIONS, POST"
    error = answer.json["contextWrites"]["to"]
    assert error["status_code"] == "INVALID_REQUEST"
    assert error["status_msg"] == (
        "Blocks run with POST: POST /blocks/getTenants with the arguments (in the body or the "
        "query string). GET /blocks/getTenants without a query describes the block."
    )
    assert TOKEN not in answer.get_data(as_text=True)


def test_a_get_without_a_query_still_describes_the_block(client):
    assert client.get("/blocks/getTenants").json["name"] == "getTenants"


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_json_sent_with_another_content_type_is_read_as_json(content_type, client, mocked):
    mocked.get(TENANTS + "/t-1", json={"id": "t-1"})
    body = json.dumps({"accessToken": TOKEN, "id": "t-1"})  # what curl -d '{...}' sends
    answer = client.post("/blocks/getSingleTenant", data=body, content_type=content_type)
    assert answer.status_code == 200, answer.json


@pytest.mark.parametrize("switch", ["1", "true", True, 1])
def test_the_stream_switch_is_read_from_a_json_body(switch, client, mocked):
    mocked.get(CLIENT + "/files/a.bin", body=b"\x00raw", content_type="application/octet-stream")
    args = {"accessToken": TOKEN, "tenantId": "t-1", "clientId": "c-1", "filename": "a.bin"}
    answer = client.post("/blocks/downloadFile", json={**args, "stream": switch})
    assert answer.status_code == 200
    assert answer.data == b"\x00raw"
    assert answer.headers["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    "block, args, field, says",
    [
        (
            "getTenants",
            {"sortBy": "password"},
            "sortBy",
            "Must be one of: id, name, created_at, updated_at, max_clients, max_messages.",
        ),
        (
            "getClients",
            {"tenantId": "t-1", "state": "asleep"},
            "state",
            "Must be one of: online, offline.",
        ),
    ],
)
def test_a_fixed_set_value_outside_it_never_leaves(block, args, field, says, client, mocked):
    answer = client.post(f"/blocks/{block}", json={"accessToken": TOKEN, **args})
    assert answer.status_code == 422
    error = answer.json["contextWrites"]["to"]
    assert error["status_code"] == "INVALID_FIELDS" and error["errors"] == {field: [says]}
    assert len(mocked.calls) == 0
