"""/subscriptions and the ``subscriptions`` CLI: the REST Hooks records, their refusals, the
API key, and secrets shown once (connector/events/subscriptions.py and the web blueprint)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app import create_app
from tests.events.conftest import subscribe
from tests.support.upstream import APP

TARGET = "http://127.0.0.1:9/hook"  # sandbox mode admits loopback; nothing is sent here
OWN = {"clientKey": "own-key-7a1", "clientSecret": "own-secret-c42e"}


def test_a_subscription_is_made_shown_listed_and_removed(sandbox_client, pump):
    made = subscribe(sandbox_client, pump, TARGET, topic="alarms", **OWN)
    assert made["id"].startswith("sub_") and made["secret"].startswith("whsec_")
    assert made["filter"] == {"tenantId": pump[0], "clientId": pump[1], "topic": "alarms"}
    shown = sandbox_client.get(f"/subscriptions/{made['id']}")
    listed = sandbox_client.get("/subscriptions")
    assert shown.status_code == listed.status_code == 200
    assert listed.json == [shown.json]
    assert shown.json["credentials"] == "given" and shown.json["target_url"] == TARGET
    for text in (shown.get_data(as_text=True), listed.get_data(as_text=True)):
        # the signing secret and the credentials are never shown again
        assert made["secret"] not in text and OWN["clientSecret"] not in text
        assert "secret" not in json.loads(text if text[0] == "{" else text[1:-1])
    assert sandbox_client.delete(f"/subscriptions/{made['id']}").status_code == 204
    assert sandbox_client.get(f"/subscriptions/{made['id']}").status_code == 404
    assert sandbox_client.delete(f"/subscriptions/{made['id']}").status_code == 404
    assert sandbox_client.get("/subscriptions").json == []


GOOD = {
    "event": "message.received",
    "filter": {"tenantId": "t", "clientId": "c"},
    "target_url": TARGET,
    **APP,
}


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"event": None}, "REQUIRED_FIELDS", "event"),
        ({"event": "message.sent"}, "INVALID_FIELDS", "event"),
        ({"filter": {"tenantId": "t"}}, "REQUIRED_FIELDS", "filter.clientId"),
        ({"filter": "t/c"}, "INVALID_FIELDS", "filter"),
        ({"target_url": None}, "REQUIRED_FIELDS", "target_url"),
        ({"target_url": "ftp://127.0.0.1/x"}, "INVALID_FIELDS", "target_url"),
        ({"target_url": "http://10.1.2.3/x"}, "INVALID_FIELDS", "target_url"),
        ({"target_url": "http://" + "a" * 2050}, "INVALID_FIELDS", "target_url"),
        ({"clientSecret": None}, "INVALID_FIELDS", "clientKey"),
        ({"clientKey": None, "clientSecret": None}, "REQUIRED_FIELDS", "clientKey"),
    ],
)
def test_a_refused_subscription_says_which_field(sandbox_client, change, code, field):
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    answer = sandbox_client.post("/subscriptions", json=body)
    error = answer.json["contextWrites"]["to"]
    assert answer.status_code == 422 and error["status_code"] == code
    assert field in error["fields"]
    assert sandbox_client.get("/subscriptions").json == []


def test_a_body_that_is_not_json_is_refused(sandbox_client):
    answer = sandbox_client.post("/subscriptions", data="event=message.received")
    assert answer.status_code == 400
    assert answer.json["contextWrites"]["to"]["status_code"] == "INVALID_REQUEST"


def test_without_credentials_the_app_credentials_are_used(sandbox_settings):
    held = replace(sandbox_settings, app_credentials=("k", "s"))
    client = create_app(held).test_client()
    body = {k: v for k, v in GOOD.items() if k not in APP}
    answer = client.post("/subscriptions", json=body)
    assert answer.status_code == 201 and answer.json["credentials"] == "app"


ROUTES = [
    ("post", "/subscriptions"),
    ("get", "/subscriptions"),
    ("get", "/subscriptions/sub_x"),
    ("delete", "/subscriptions/sub_x"),
    ("get", "/subscriptions/sub_x/deliveries"),
    ("post", "/subscriptions/sub_x/deliveries/msg_y/redeliver"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_the_api_key_when_keys_are_set(sandbox_settings, method, path):
    client = create_app(replace(sandbox_settings, api_keys=("key-1",))).test_client()
    answer = getattr(client, method)(path, json=GOOD)
    assert answer.status_code == 401
    assert answer.json["contextWrites"]["to"]["status_code"] == "UNAUTHORIZED"
    keyed = getattr(client, method)(path, json=GOOD, headers={"X-API-Key": "key-1"})
    assert keyed.status_code != 401


def test_the_cli_adds_lists_shows_and_removes(sandbox_app, pump):
    runner = sandbox_app.test_cli_runner()
    added = runner.invoke(
        args=[
            "subscriptions", "add", "--tenant-id", pump[0], "--client-id", pump[1],
            "--target-url", TARGET, "--client-key", "demo-key", "--client-secret", "demo-secret",
        ]
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    made = json.loads(added.output)
    assert made["secret"].startswith("whsec_")
    listed = runner.invoke(args=["subscriptions", "list"])
    assert [s["id"] for s in json.loads(listed.output)] == [made["id"]]
    assert made["secret"] not in listed.output and "demo-secret" not in listed.output
    shown = runner.invoke(args=["subscriptions", "show", made["id"]])
    assert json.loads(shown.output)["id"] == made["id"]
    log = runner.invoke(args=["subscriptions", "show", made["id"], "--deliveries"])
    assert json.loads(log.output) == []
    assert runner.invoke(args=["subscriptions", "remove", made["id"]]).exit_code == 0
    gone = runner.invoke(args=["subscriptions", "show", made["id"]])
    assert gone.exit_code == 1 and "no subscription" in gone.output


def test_the_cli_refuses_a_private_target(sandbox_app):
    refused = sandbox_app.test_cli_runner().invoke(
        args=[
            "subscriptions", "add", "--tenant-id", "t", "--client-id", "c",
            "--target-url", "http://192.168.1.5/hook", "--client-key", "k", "--client-secret", "s",
        ]
    )  # fmt: skip
    assert refused.exit_code == 1 and "private" in refused.output
