"""Edges found by review: a download broken off mid-body, an upload sent again after a
renewed token, Idempotency-Keys on calls that never reached InstaMsg, rate limits and
made-up keys, RapidAPI's secret on the manifest route, settings that are not numbers."""

import base64
import io
from dataclasses import replace

import pytest

from app import create_app
from connector.config import ConfigError, Settings
from tests.support.loopback import closed_url
from tests.support.upstream import INSTAMSG, TOKEN

CLIENT = "/api/v1/tenants/t-1/clients/c-1"
FILE_ARGS = {"accessToken": TOKEN, "tenantId": "t-1", "clientId": "c-1", "filename": "a.bin"}


def error_of(answer):
    return answer.json["contextWrites"]["to"]


def test_a_download_broken_off_mid_body_is_an_upstream_error(settings, loopback):
    loopback.get(CLIENT + "/files/a.bin", fault="cut", body=b"x" * 5000)
    client = create_app(replace(settings, api_url=loopback.url)).test_client()
    answer = client.post("/blocks/downloadFile", json=FILE_ARGS)
    assert answer.status_code == 502
    assert error_of(answer)["status_code"] == "UPSTREAM_UNAVAILABLE"


def test_an_upload_sent_again_after_a_renewed_token_sends_the_whole_file(client, mocked_in_order):
    data = bytes(range(256)) * 20
    upload, token = INSTAMSG + CLIENT + "/files/a.bin", INSTAMSG + "/oauth2/token"
    mocked_in_order.post(token, json={"access_token": "old-1", "expires_in": 3600})
    mocked_in_order.post(upload, status=401, json={"message": "expired"})
    mocked_in_order.post(token, json={"access_token": "new-2", "expires_in": 3600})
    mocked_in_order.post(upload, status=201, json={"name": "a.bin"})
    args = {k: v for k, v in FILE_ARGS.items() if k != "accessToken"}
    answer = client.post(
        "/blocks/uploadFile",
        data={**args, "clientKey": "k", "clientSecret": "s", "file": (io.BytesIO(data), "a.bin")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200, answer.json
    # responses reads a streamed body as it is sent: each is the bytes that went out.
    uploads = [c.request for c in mocked_in_order.calls if c.request.url == upload]
    assert len(uploads) == 2
    assert all(data in u.body for u in uploads)  # the retry is not empty or cut


def test_a_keyed_call_that_never_reached_instamsg_frees_its_key(settings, tmp_path):
    client = create_app(replace(settings, api_url=closed_url(), retries=0)).test_client()
    args = {**FILE_ARGS, "fileContent": base64.b64encode(b"hi").decode()}
    first = client.post("/blocks/uploadFile", json=args, headers={"Idempotency-Key": "k-1"})
    again = client.post("/blocks/uploadFile", json=args, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 502
    assert "Idempotent-Replayed" not in again.headers  # sent again, not replayed


def test_a_call_cut_after_sending_keeps_its_answer_under_the_key(settings, loopback):
    loopback.post(CLIENT + "/messages", fault="drop")
    client = create_app(replace(settings, api_url=loopback.url)).test_client()
    args = {**{k: v for k, v in FILE_ARGS.items() if k != "filename"}, "id": 1, "type": "pub"}
    args.update(topic="t", payload="p", qos=1)
    first = client.post("/blocks/publishMessage", json=args, headers={"Idempotency-Key": "k-2"})
    again = client.post("/blocks/publishMessage", json=args, headers={"Idempotency-Key": "k-2"})
    # It may have taken effect: the key answers OUTCOME_UNKNOWN, now and on every retry.
    assert first.status_code == again.status_code == 502
    assert first.json["contextWrites"]["to"]["status_code"] == "OUTCOME_UNKNOWN"
    assert again.json["contextWrites"]["to"]["status_code"] == "OUTCOME_UNKNOWN"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(loopback.calls) == 1


def test_made_up_api_keys_get_no_allowance_of_their_own(settings, mocked):
    mocked.get(INSTAMSG + "/api/v1/tenants/t-1", json={"id": "t-1"})
    client = create_app(replace(settings, rate_limit="5/minute")).test_client()
    statuses = [
        client.post(
            "/blocks/getSingleTenant",
            json={"accessToken": TOKEN, "id": "t-1"},
            headers={"X-API-Key": f"made-up-{n}"},
        ).status_code
        for n in range(8)
    ]
    assert statuses == [200] * 5 + [429] * 3


def test_rapidapis_proxy_secret_opens_the_rapidapi_manifest_route(settings):
    client = create_app(
        replace(settings, api_keys=("k1",), rapidapi_proxy_secret="proxy-s")
    ).test_client()
    assert client.get("/api/InstaMsg").status_code == 401
    opened = client.get("/api/InstaMsg", headers={"X-RapidAPI-Proxy-Secret": "proxy-s"})
    assert opened.status_code == 200 and opened.json["package"] == "InstaMsg"
    assert (
        client.get("/manifest.json", headers={"X-RapidAPI-Proxy-Secret": "proxy-s"}).status_code
        == 401
    )


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_a_number_setting_must_be_finite(raw):
    with pytest.raises(ConfigError, match="^INSTAMSG_READ_TIMEOUT must be a number"):
        Settings.from_env({"INSTAMSG_READ_TIMEOUT": raw})
