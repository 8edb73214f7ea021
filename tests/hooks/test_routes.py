"""Hooks over HTTP: made with an API key, reached by their sender with its own signature, its
payload mapped to the block's arguments, and each delivery published once however often it
is sent."""

import json
from dataclasses import replace

import pytest

from app import create_app
from connector.hooks.service import DELIVERY_TTL, KEEP_DELIVERIES, public_path
from tests.support.upstream import INSTAMSG, TOKEN
from tests.support.webhooks import fixture, github_headers, standard_headers

API_KEY = "conn-key-8d2f61"
AUTH = {"X-API-Key": API_KEY}
MESSAGES = INSTAMSG + "/api/v1/tenants/t/clients/c/messages"
LOCATION = {"Location": "/api/v1/tenants/t/clients/c/messages/m-1"}
PUSH = fixture("github_push.json")
#: A publish whose topic is fixed and whose payload is the pushed commit's message.
PUBLISH = {"accessToken": TOKEN, "tenantId": "t", "clientId": "c", "id": 7, "type": "pub"}
GITHUB_HOOK = {
    "block": "publishMessage",
    "args": {**PUBLISH, "qos": 1},
    "map": {"topic": "'builds'", "payload": "body.head_commit.message"},
    "verify": {"scheme": "github"},
}


@pytest.fixture
def app(settings):
    return create_app(replace(settings, api_keys=(API_KEY,)))


def make(client, body=GITHUB_HOOK):
    made = client.post("/hooks", json=body, headers=AUTH)
    assert made.status_code == 201, made.json
    return made.json


def sent_payloads(mocked):
    return [json.loads(call.request.body) for call in mocked.calls]


# -- made, shown, removed ------------------------------------------------------------------


def test_a_hook_is_made_with_its_secret_shown_once(client):
    made = make(client)
    assert made["url"] == "/webhooks/" + made["id"] and len(made["secret"]) >= 22
    shown = client.get("/hooks/" + made["id"], headers=AUTH).json
    listed = client.get("/hooks", headers=AUTH).json
    assert made["secret"] not in json.dumps(shown) + json.dumps(listed)
    assert shown["args"]["accessToken"] == "[redacted]" and TOKEN not in json.dumps(listed)
    assert [hook["id"] for hook in listed] == [made["id"]]
    assert shown["delivery_id"] == 'headers."x-github-delivery"'


def test_a_token_hooks_url_holds_its_token_once(client):
    made = make(client, {**GITHUB_HOOK, "verify": {"scheme": "token"}})
    assert made["url"] == f"/webhooks/{made['id']}/{made['secret']}"
    shown = client.get("/hooks/" + made["id"], headers=AUTH).json
    assert shown["url"] == f"/webhooks/{made['id']}/<token>"


def test_hooks_are_managed_with_an_api_key_only(client):
    made = make(client)
    for method, path in [
        ("post", "/hooks"),
        ("get", "/hooks"),
        ("get", "/hooks/" + made["id"]),
        ("delete", "/hooks/" + made["id"]),
        ("get", f"/hooks/{made['id']}/deliveries"),
        ("post", f"/hooks/{made['id']}/test"),
    ]:
        answer = getattr(client, method)(path, json=GITHUB_HOOK)
        assert answer.status_code == 401, (method, path)
    assert client.get("/hooks/" + made["id"], headers=AUTH).status_code == 200


def test_a_removed_hook_is_gone(client):
    made = make(client)
    assert client.delete("/hooks/" + made["id"], headers=AUTH).json["removed"] is True
    gone = client.get("/hooks/" + made["id"], headers=AUTH)
    assert gone.status_code == 404 and gone.json["contextWrites"]["to"]["status_code"] == (
        "HOOK_NOT_FOUND"
    )
    assert client.get("/hooks", headers=AUTH).json == []


def refused(answer):
    body = answer.json["contextWrites"]["to"]
    return answer.status_code, body["status_code"], body.get("fields"), body["status_msg"]


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        ({"map": {"payload": "body.head_commit.["}}, "map.payload", "does not compile"),
        ({"delivery_id": "headers.[["}, "delivery_id", "does not compile"),
        ({"map": {"payloud": "body.x"}}, "map.payloud", "no such argument"),
        ({"args": {"tenant": "t"}}, "args.tenant", "no such argument"),
        ({"verify": {"scheme": "carrier-pigeon"}}, "verify.scheme", "standard-webhooks"),
        ({"verify": {"scheme": "hmac"}}, "verify.header", "needs it"),
        (
            {"verify": {"scheme": "hmac", "header": "X-S", "algorithm": "md5"}},
            "verify.algorithm",
            "",
        ),
        ({"verify": {"scheme": "token", "secret": "short"}}, "verify.secret", "128"),
        ({"verify": {"scheme": "github", "secret": "s3cret"}}, "verify.secret", "at least 16"),
        ({"verify": {"scheme": "hmac", "header": "X-S", "secret": ""}}, "verify.secret", "16"),
        ({"verify": {"scheme": "stripe", "secret": 7}}, "verify.secret", "16 to 512"),
        ({"verify": {"scheme": "standard-webhooks", "secret": "x!"}}, "verify.secret", "whsec_"),
        ({"respond": "later"}, "respond", "result"),
        ({"respond": "queued", "map": {"accessToken": "body.t"}}, "map.accessToken", "args"),
        ({"colour": "blue"}, "colour", "not a field"),
    ],
)
def test_a_hook_that_cannot_work_is_refused_when_made_naming_its_part(client, change, field, said):
    status, code, fields, message = refused(
        client.post("/hooks", json={**GITHUB_HOOK, **change}, headers=AUTH)
    )
    assert (status, code, fields) == (422, "INVALID_FIELDS", [field])
    assert said in message
    assert client.get("/hooks", headers=AUTH).json == []


def test_an_unknown_block_is_refused_when_made(client):
    answer = client.post("/hooks", json={**GITHUB_HOOK, "block": "publishMesage"}, headers=AUTH)
    assert refused(answer)[:2] == (404, "UNKNOWN_BLOCK")


# -- a sender's deliveries -----------------------------------------------------------------


def github_delivery(client, made, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958", raw=PUSH):
    headers = github_headers(made["secret"], raw, delivery)
    return client.post(made["url"], data=raw, headers=headers)


def test_the_same_delivery_five_times_publishes_once(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = make(client)
    answers = [github_delivery(client, made) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert {json.dumps(a.json) for a in answers} == {
        json.dumps({"callback": "success", "contextWrites": {"to": {"messageId": "m-1"}}})
    }
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None] + ["true"] * 4
    assert len(mocked.calls) == 1
    sent = sent_payloads(mocked)[0]
    assert sent["topic"] == "builds"
    assert sent["payload"] == "Close the valve when the sensor goes quiet"


def test_two_deliveries_publish_twice(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = make(client)
    assert github_delivery(client, made, "d-1").status_code == 200
    assert github_delivery(client, made, "d-2").status_code == 200
    assert len(mocked.calls) == 2


def test_a_delivery_id_is_the_hooks_own_not_a_callers_key(client, mocked):
    """The same id under two hooks (or as an API caller's Idempotency-Key) runs each once."""
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    first, second = make(client), make(client)
    github_delivery(client, first, "same-id")
    github_delivery(client, second, "same-id")
    args = {**PUBLISH, "qos": 1, "topic": "builds", "payload": "x"}
    client.post("/blocks/publishMessage", json=args, headers={**AUTH, "Idempotency-Key": "same-id"})
    assert len(mocked.calls) == 3


def test_a_standard_webhooks_sender_is_verified_and_mapped(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = make(
        client,
        {
            **GITHUB_HOOK,
            "map": {"topic": "body.type", "payload": "body.data.reading"},
            "verify": {"scheme": "standard-webhooks"},
        },
    )
    assert made["secret"].startswith("whsec_")
    raw = json.dumps({"type": "valve.opened", "data": {"reading": "21.5C"}}).encode()
    for _ in range(2):
        answer = client.post(
            made["url"], data=raw, headers=standard_headers(made["secret"], raw, "msg_7")
        )
        assert answer.status_code == 200
    assert len(mocked.calls) == 1
    assert sent_payloads(mocked)[0]["topic"] == "valve.opened"


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("wrong secret", "SIGNATURE_INVALID"),
        ("tampered body", "SIGNATURE_INVALID"),
        ("no signature", "SIGNATURE_MISSING"),
    ],
)
def test_a_delivery_that_fails_its_check_is_401_and_runs_nothing(
    client, nothing_sent, tamper, code
):
    made = make(client)
    secret = made["secret"] + "x" if tamper == "wrong secret" else made["secret"]
    headers = github_headers(secret, PUSH, "d-1")
    raw = PUSH.replace(b"quiet", b"loud") if tamper == "tampered body" else PUSH
    if tamper == "no signature":
        del headers["X-Hub-Signature-256"]
    answer = client.post(made["url"], data=raw, headers=headers)
    status, got, _, message = refused(answer)
    assert (status, got) == (401, code)
    assert made["secret"] not in message


def test_a_stale_standard_webhooks_delivery_is_401(client, nothing_sent):
    made = make(client, {**GITHUB_HOOK, "verify": {"scheme": "standard-webhooks"}})
    raw = b'{"head_commit": {"message": "m"}}'
    headers = standard_headers(made["secret"], raw, "msg_1", when=1_000_000_000)
    assert refused(client.post(made["url"], data=raw, headers=headers))[:2] == (
        401,
        "SIGNATURE_STALE",
    )


def test_an_unknown_hook_and_a_wrong_token_answer_alike(client, nothing_sent):
    made = make(client, {**GITHUB_HOOK, "verify": {"scheme": "token"}})
    token = made["secret"]
    answers = [
        client.post(f"/webhooks/{made['id']}/{'A' * len(token)}", data=PUSH),
        client.post(f"/webhooks/{made['id']}", data=PUSH),
        client.post(f"/webhooks/h{'0' * 20}/{token}", data=PUSH),
        client.post("/webhooks/not-a-hook", data=PUSH),
    ]
    seen = {(a.status_code, a.json["contextWrites"]["to"]["status_msg"]) for a in answers}
    assert len(seen) == 1 and next(iter(seen))[0] == 404


def test_a_token_hook_runs_with_its_token(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = make(client, {**GITHUB_HOOK, "verify": {"scheme": "token"}})
    assert client.post(made["url"], data=PUSH, content_type="application/json").status_code == 200


@pytest.mark.parametrize(
    ("content_type", "raw", "expression", "sent"),
    [
        ("application/json", b'{"m": {"text": "hi"}}', "body.m.text", "hi"),
        ("application/x-www-form-urlencoded", b"text=hello+there&x=1", "body.text", "hello there"),
        ("text/plain", b"plain words", "body", "plain words"),
        ("application/json", b"{}", 'headers."x-reading"', "21.5C"),
        ("application/json", b"{}", "query.reading", "19C"),
    ],
)
def test_json_form_and_text_bodies_headers_and_query_are_mapped(
    client, mocked, content_type, raw, expression, sent
):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = make(
        client,
        {
            **GITHUB_HOOK,
            "map": {"topic": "'t'", "payload": expression},
            "verify": {"scheme": "token"},
        },
    )
    answer = client.post(
        made["url"] + "?reading=19C",
        data=raw,
        headers={"Content-Type": content_type, "X-Reading": "21.5C"},
    )
    assert answer.status_code == 200, answer.json
    assert sent_payloads(mocked)[0]["payload"] == sent


def test_an_unmapped_path_is_422_naming_the_argument_and_expression(client, nothing_sent):
    made = make(
        client, {**GITHUB_HOOK, "map": {"topic": "'t'", "payload": "body.pull_request.title"}}
    )
    status, code, fields, message = refused(github_delivery(client, made))
    assert (status, code, fields) == (422, "INVALID_FIELDS", ["payload"])
    assert "body.pull_request.title" in message
    record = client.get(f"/hooks/{made['id']}/deliveries", headers=AUTH).json[0]
    assert (record["status"], record["http_status"], record["code"]) == (
        "failed",
        422,
        "INVALID_FIELDS",
    )


# -- what happened, and a sample -----------------------------------------------------------


def test_deliveries_are_recorded_newest_first_with_secrets_scrubbed(client, mocked):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = make(client)
    for delivery in ("d-1", "d-2", "d-2"):
        github_delivery(client, made, delivery)
    records = client.get(f"/hooks/{made['id']}/deliveries", headers=AUTH).json
    assert [(r["delivery_id"], r["attempts"]) for r in records] == [("d-2", 2), ("d-1", 1)]
    assert records[0]["args"]["accessToken"] == "[redacted]" and TOKEN not in json.dumps(records)
    assert records[0]["envelope"] == {
        "callback": "success",
        "contextWrites": {"to": {"messageId": "m-1"}},
    }
    assert records[0]["replayed"] is True and records[1]["replayed"] is False


def test_deliveries_are_bounded_in_time_and_count():
    assert KEEP_DELIVERIES <= 1000 and DELIVERY_TTL <= 30 * 24 * 3600


def test_a_sample_is_mapped_and_nothing_is_called(client, nothing_sent):
    made = make(client)
    sample = {
        "body": json.loads(PUSH),
        "headers": {"X-GitHub-Delivery": "d-9"},
    }
    shown = client.post(f"/hooks/{made['id']}/test", json=sample, headers=AUTH).json
    assert shown["args"]["payload"] == "Close the valve when the sensor goes quiet"
    assert shown["args"]["accessToken"] == "[redacted]" and shown["delivery_id"] == "d-9"
    assert shown["mapped"] == ["payload", "topic"]
    assert client.get(f"/hooks/{made['id']}/deliveries", headers=AUTH).json == []


# -- what is never written -----------------------------------------------------------------


def test_a_url_token_never_reaches_a_log_line(client, mocked, capfd):
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = make(client, {**GITHUB_HOOK, "verify": {"scheme": "token"}})
    capfd.readouterr()
    client.post(made["url"], data=PUSH, content_type="application/json")
    client.post(made["url"] + "x", data=PUSH)  # a wrong token is logged no more than a right one
    logged = capfd.readouterr().err
    assert made["id"] in logged and made["secret"] not in logged
    assert made["secret"][:12] not in logged


@pytest.mark.parametrize("prefix", ["/WEBHOOKS/", "/hooks/", "/webhook/"])
def test_a_url_token_under_a_prefix_got_wrong_reaches_no_log_line_either(client, capfd, prefix):
    made = make(client, {**GITHUB_HOOK, "verify": {"scheme": "token"}})
    capfd.readouterr()
    answer = client.post(f"{prefix}{made['id']}/{made['secret']}", data=PUSH)
    assert answer.status_code in (401, 404, 405)
    logged = capfd.readouterr().err
    assert made["secret"][:12] not in logged and "[redacted]" in logged


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/webhooks/habc/tok", "/webhooks/habc/[redacted]"),
        ("/webhooks/habc", "/webhooks/habc"),
        ("/hooks/habc", "/hooks/habc"),
        ("/blocks/publishMessage", "/blocks/publishMessage"),
    ],
)
def test_the_logged_path_of_a_request(path, logged):
    assert public_path(path) == logged


def test_a_hook_whose_block_is_gone_shows_no_argument_and_answers_unknown_block(
    app, client, nothing_sent
):
    made = make(client, {**GITHUB_HOOK, "verify": {"scheme": "token"}})
    store = app.extensions["instamsg_hooks"].store
    store.put(made["id"], {**store.get(made["id"]), "block": "retiredBlock"})
    shown = client.get("/hooks/" + made["id"], headers=AUTH).json
    assert set(shown["args"].values()) == {"[redacted]"}
    answer = client.post(made["url"], data=PUSH, content_type="application/json")
    assert refused(answer)[:2] == (404, "UNKNOWN_BLOCK")
    record = client.get(f"/hooks/{made['id']}/deliveries", headers=AUTH).json[0]
    assert TOKEN not in json.dumps(record) and record["code"] == "UNKNOWN_BLOCK"


def test_a_delivery_that_failed_upstream_is_redelivered_once_per_key(client, mocked_in_order):
    mocked_in_order.post(MESSAGES, status=429)  # nothing sent: the delivery's key is freed
    mocked_in_order.post(MESSAGES, status=201, headers=LOCATION)
    made = make(client)
    failed = github_delivery(client, made, "d-429")
    assert failed.status_code == 429
    again = f"/hooks/{made['id']}/deliveries/d-429/redeliver"
    first = client.post(again, headers={**AUTH, "Idempotency-Key": "redo-1"})
    replay = client.post(again, headers={**AUTH, "Idempotency-Key": "redo-1"})
    assert first.status_code == replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(mocked_in_order.calls) == 2
    assert json.loads(mocked_in_order.calls[1].request.body)["payload"] == (
        "Close the valve when the sensor goes quiet"
    )
    record = client.get(f"/hooks/{made['id']}/deliveries", headers=AUTH).json[0]
    assert (record["attempts"], record["status"], record["http_status"]) == (3, "done", 200)


def test_redeliver_needs_an_api_key_and_a_known_record(client, nothing_sent):
    made = make(client)
    path = f"/hooks/{made['id']}/deliveries/never/redeliver"
    assert client.post(path).status_code == 401
    assert client.post(path, headers=AUTH).status_code == 404


def test_a_sample_without_the_senders_headers_still_shows_its_mapping(client):
    made = make(client)
    shown = client.post(
        f"/hooks/{made['id']}/test", json={"body": json.loads(PUSH)}, headers=AUTH
    ).json
    assert shown["args"]["payload"].startswith("Close the valve")
    assert shown["delivery_id"] is None and "x-github-delivery" in shown["delivery_id_problem"]


def test_a_delivery_over_the_body_limit_of_blocks_is_413(settings, nothing_sent):
    app = create_app(replace(settings, max_request_bytes=1024))
    client = app.test_client()
    made = make(client, {**GITHUB_HOOK, "verify": {"scheme": "token"}})
    answer = client.post(made["url"], data=b"x" * 2048, content_type="text/plain")
    assert refused(answer)[:2] == (413, "PAYLOAD_TOO_LARGE")


def test_a_hook_without_credentials_runs_with_the_app_credentials_the_connector_holds(
    settings, mocked
):
    mocked.post(
        INSTAMSG + "/oauth2/token",
        json={"access_token": "managed-7", "token_type": "bearer", "expires_in": 3600},
    )
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    held = replace(settings, api_keys=(API_KEY,), app_credentials=("demo-key", "demo-secret"))
    client = create_app(held).test_client()
    bare = {k: v for k, v in GITHUB_HOOK["args"].items() if k != "accessToken"}
    made = make(client, {**GITHUB_HOOK, "args": bare})
    assert github_delivery(client, made).status_code == 200
    assert mocked.calls[1].request.headers["Authorization"] == "Bearer managed-7"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"head_commit": {"message": "\\udc80"}}', "lone surrogate"),
        (b'{"head_commit": {"message": ' + b"[" * 300 + b"]" * 300 + b"}}", "too deep"),
    ],
)
def test_a_json_body_no_json_writer_can_write_again_is_a_400_and_recorded(
    client, body, why, nothing_sent
):
    """A lone surrogate or a body nested past MAX_DEPTH once answered 500, and the record it
    left made the hook's whole list of deliveries answer 500 after it."""
    made = make(client)
    answer = github_delivery(client, made, raw=body)
    assert answer.status_code == 400, (why, answer.json)
    listed = client.get(f"/hooks/{made['id']}/deliveries", headers=AUTH)
    assert listed.status_code == 200
    assert [r["http_status"] for r in listed.json] == [400]


def test_another_body_under_a_delivery_id_already_run_leaves_its_record_as_it_was(client, mocked):
    """GitHub does not sign X-GitHub-Delivery: a captured body sent again under another
    delivery's id is refused, and that delivery's record still says what it did (once it was
    overwritten by the refusal, and a redeliver then published the first body twice)."""
    mocked.post(MESSAGES, status=201, headers=LOCATION)
    made = make(client)
    assert github_delivery(client, made, "d-1").status_code == 200
    other = PUSH.replace(b"Close the valve", b"Open the valve")
    assert github_delivery(client, made, "d-1", raw=other).status_code == 422
    records = client.get(f"/hooks/{made['id']}/deliveries", headers=AUTH).json
    assert [(r["delivery_id"], r["status"]) for r in records] == [("d-1", "done")]
    assert records[0]["args"]["payload"] == "Close the valve when the sensor goes quiet"
    assert len(mocked.calls) == 1
