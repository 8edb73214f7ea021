"""Events beyond message.received (connector/events/kinds.py): the table every face reads, the
subscription schema per event, and the watcher telling new clients and new files by comparing
a listing with the one before, with the sandbox in process."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter

import pytest
from standardwebhooks import Webhook

from app import create_app
from connector.engine.registry import REGISTRY
from connector.events import watcher as watcher_module
from connector.events.kinds import EVENTS, FILTER_FIELDS, KINDS, LISTING, TIME
from tests.events.conftest import call, publish, subscribe
from tests.support.loopback import Loopback
from tests.support.upstream import APP


@pytest.fixture
def catcher():
    with Loopback() as server:
        server.post("/hook")
        yield server


def subscribe_to(client, event, target, **flt):
    body = {"event": event, "filter": flt, "target_url": target, **APP}
    answer = client.post("/subscriptions", json=body)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return answer.json


def new_client(client, tenant, name):
    made = call(client, "createClient", tenantId=tenant, type="device", name=name,
                provisioningId=f"{name}-{time.time_ns()}", pubTopics=["telemetry"])  # fmt: skip
    return made["id"]


def upload(client, pump, filename, content=b"hello"):
    time.sleep(0.002)  # a new millisecond: an upload's created_at is InstaMsg's clock's
    call(client, "uploadFile", tenantId=pump[0], clientId=pump[1], filename=filename,
         fileContent=base64.b64encode(content).decode())  # fmt: skip


def verified_for(catcher, sub) -> list[dict]:
    """The deliveries to ``sub`` (each verified with its own secret)."""
    hook, found = Webhook(sub["secret"]), []
    for call_ in catcher.calls:
        body = json.loads(call_.request.body)
        if body["subscription"] == sub["id"]:
            hook.verify(call_.request.body, dict(call_.request.headers))
            found.append({**body, "webhook-id": call_.request.headers["webhook-id"]})
    return found


def watcher(app, owner="w"):
    return app.extensions["events"].watcher(owner=owner)


# -- the table -----------------------------------------------------------------------------


def test_the_events_are_these_three_message_received_first():
    assert EVENTS == ("message.received", "client.created", "file.created")


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_each_event_is_a_block_its_required_arguments_and_a_cursor(kind):
    taken = {(f.data_key or n): f for n, f in REGISTRY.get(kind.block).schema().fields.items()}
    # the filter is what one read of the block needs: one poll serves every subscription alike
    assert set(kind.filter) == {name for name, f in taken.items() if f.required}
    assert set(kind.fields) <= set(FILTER_FIELDS)
    # a listing has no start: it is compared whole with the last one
    assert kind.cursor == (TIME if "start" in taken else LISTING)
    assert kind.summary and kind.data.endswith(f"{kind.block} lists it")


# -- the schema per event ------------------------------------------------------------------

TARGET = "http://127.0.0.1:9/hook"


@pytest.mark.parametrize(
    ("event", "flt", "code", "field"),
    [
        ("client.created", {}, "REQUIRED_FIELDS", "filter.tenantId"),
        ("client.created", {"tenantId": "t", "clientId": "c"}, "INVALID_FIELDS", "filter.clientId"),
        ("client.created", {"tenantId": "t", "topic": "x"}, "INVALID_FIELDS", "filter.topic"),
        ("file.created", {"tenantId": "t"}, "REQUIRED_FIELDS", "filter.clientId"),
        ("file.created", {"clientId": "c"}, "REQUIRED_FIELDS", "filter.tenantId"),
        (
            "file.created",
            {"tenantId": "t", "clientId": "c", "topic": "x"},
            "INVALID_FIELDS",
            "filter.topic",
        ),  # fmt: skip
        (
            "file.created",
            {"tenantId": "t", "clientId": "c" * 129},
            "INVALID_FIELDS",
            "filter.clientId",
        ),  # fmt: skip
        ("message.received", {"tenantId": "t"}, "REQUIRED_FIELDS", "filter.clientId"),
        ("client.deleted", {"tenantId": "t"}, "INVALID_FIELDS", "event"),
    ],
)
def test_each_event_requires_its_own_filter_and_names_the_field(
    sandbox_client, event, flt, code, field
):
    body = {"event": event, "filter": flt, "target_url": TARGET, **APP}
    answer = sandbox_client.post("/subscriptions", json=body)
    error = answer.json["contextWrites"]["to"]
    assert answer.status_code == 422 and error["status_code"] == code
    assert field in error["fields"] and field in error["status_msg"]
    assert sandbox_client.get("/subscriptions").json == []


@pytest.mark.parametrize(
    ("event", "flt"),
    [
        ("client.created", {"tenantId": "t"}),
        ("file.created", {"tenantId": "t", "clientId": "c"}),
        ("message.received", {"tenantId": "t", "clientId": "c", "topic": "x"}),
    ],
)
def test_each_event_keeps_its_filter_and_shows_its_name(sandbox_client, event, flt):
    made = subscribe_to(sandbox_client, event, TARGET, **flt)
    shown = sandbox_client.get(f"/subscriptions/{made['id']}").json
    assert (shown["event"], shown["filter"]) == (event, flt)


def test_the_cli_subscribes_to_each_event_and_names_a_missing_filter(sandbox_app):
    runner = sandbox_app.test_cli_runner()
    base = ["subscriptions", "add", "--target-url", TARGET, "--client-key", "k",
            "--client-secret", "s", "--tenant-id", "t"]  # fmt: skip
    added = runner.invoke(args=[*base, "--event", "client.created"])
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["filter"] == {"tenantId": "t"}
    refused = runner.invoke(args=[*base, "--event", "file.created"])
    assert refused.exit_code == 1 and "filter.clientId" in refused.output
    files = runner.invoke(args=[*base, "--event", "file.created", "--client-id", "c"])
    assert json.loads(files.output)["event"] == "file.created"
    unknown = runner.invoke(args=[*base, "--event", "client.deleted"])
    assert unknown.exit_code == 2  # click's own refusal of a choice


# -- client.created ------------------------------------------------------------------------


def test_a_new_client_is_sent_once_to_each_subscription_and_an_old_one_never(
    sandbox_app, sandbox_client, pump, catcher
):
    tenant = pump[0]
    first = subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=tenant)
    second = subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=tenant)
    w = watcher(sandbox_app)
    w.round()  # the baseline: pump existed before both
    assert catcher.calls == []
    valve = new_client(sandbox_client, tenant, "valve")
    w.round()
    w.round()  # nothing twice
    assert w.polls == 3  # one getClients per round for both subscriptions
    bodies = [b for s in (first, second) for b in verified_for(catcher, s)]
    assert [(b["type"], b["data"]["id"], b["data"]["name"]) for b in bodies] == [
        ("client.created", valve, "valve")
    ] * 2
    assert {b["subscription"] for b in bodies} == {first["id"], second["id"]}


def test_a_client_made_after_the_subscription_but_before_the_first_poll_is_sent(
    sandbox_app, sandbox_client, pump, catcher
):
    sub = subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=pump[0])
    valve = new_client(sandbox_client, pump[0], "valve")  # its created_at: after the subscription
    watcher(sandbox_app).round()
    assert [b["data"]["id"] for b in verified_for(catcher, sub)] == [valve]


def test_a_later_subscription_is_not_sent_what_came_before_it(
    sandbox_app, sandbox_client, pump, catcher
):
    tenant = pump[0]
    early = subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=tenant)
    w = watcher(sandbox_app)
    w.round()
    valve = new_client(sandbox_client, tenant, "valve")
    time.sleep(0.002)  # the subscription's millisecond is after valve's
    late = subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=tenant)
    w.round()
    assert [b["data"]["id"] for b in verified_for(catcher, early)] == [valve]
    assert verified_for(catcher, late) == []


def test_a_restarted_watcher_carries_on_from_the_snapshot(sandbox_settings, pump, catcher):
    app = create_app(sandbox_settings)
    client = app.test_client()
    sub = subscribe_to(client, "client.created", catcher.url + "/hook", tenantId=pump[0])
    watcher(app).round()
    valve = new_client(client, pump[0], "valve")
    watcher(app).round()
    gate = new_client(client, pump[0], "gate")
    again = create_app(sandbox_settings)  # a restart: another app over the same data directory
    watcher(again).round()
    watcher(again).round()
    sent = Counter(b["data"]["id"] for b in verified_for(catcher, sub))
    assert sent == {valve: 1, gate: 1}


def test_a_deleted_client_made_again_is_new(sandbox_app, sandbox_client, pump, catcher):
    sub = subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=pump[0])
    w = watcher(sandbox_app)
    w.round()
    call(sandbox_client, "deleteClient", tenantId=pump[0], clientId=pump[1])
    w.round()
    again = new_client(sandbox_client, pump[0], "pump")
    w.round()
    assert [b["data"]["id"] for b in verified_for(catcher, sub)] == [again]


# -- file.created --------------------------------------------------------------------------


def test_new_files_re_uploads_and_files_deleted_then_made_again_are_each_sent_once(
    sandbox_app, sandbox_client, pump, catcher
):
    upload(sandbox_client, pump, "old.bin")  # before the subscription: never sent
    flt = {"tenantId": pump[0], "clientId": pump[1]}
    sub = subscribe_to(sandbox_client, "file.created", catcher.url + "/hook", **flt)
    w = watcher(sandbox_app)
    w.round()
    upload(sandbox_client, pump, "firmware.bin")
    w.round()
    upload(sandbox_client, pump, "firmware.bin")  # uploaded again, same name and size
    w.round()
    call(sandbox_client, "deleteFile", filename="firmware.bin", **flt)
    w.round()  # seen gone
    upload(sandbox_client, pump, "firmware.bin")
    w.round()
    call(sandbox_client, "deleteFile", filename="firmware.bin", **flt)
    upload(sandbox_client, pump, "firmware.bin")  # gone and back between two polls
    w.round()
    w.round()
    sent = verified_for(catcher, sub)
    assert [(b["type"], b["data"]["filename"]) for b in sent] == [
        ("file.created", "firmware.bin")
    ] * 4
    assert len({b["webhook-id"] for b in sent}) == 4  # each upload its own
    assert len({b["data"]["created_at"] for b in sent}) == 4
    assert set(sent[0]["data"]) == {"filename", "size", "contentType", "created_at"}
    log = sandbox_client.get(f"/subscriptions/{sub['id']}/deliveries").json
    assert sorted(d["message"] for d in log) == sorted(
        f"firmware.bin@{b['data']['created_at']}:5" for b in sent
    )


def test_one_poll_per_watched_scope_and_event(sandbox_app, sandbox_client, pump, catcher):
    flt = {"tenantId": pump[0], "clientId": pump[1]}
    for _ in range(3):
        subscribe_to(sandbox_client, "file.created", catcher.url + "/hook", **flt)
        subscribe(sandbox_client, pump, catcher.url + "/hook")
    subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=pump[0])
    w = watcher(sandbox_app)
    w.round()
    assert w.polls == 3  # getFiles, getMessages and getClients, each once
    upload(sandbox_client, pump, "a.bin")
    publish(sandbox_client, pump, 1)
    w.round()
    kinds = Counter(json.loads(c.request.body)["type"] for c in catcher.calls)
    assert kinds == {"file.created": 3, "message.received": 3}


# -- what a listing may be -----------------------------------------------------------------


class Answer:
    def __init__(self, result):
        self.result = result


@pytest.mark.parametrize(
    "listing", [{"error": "busy"}, "clients", None, 7], ids=["object", "text", "null", "number"]
)
@pytest.mark.parametrize("event", EVENTS)
def test_a_listing_that_is_not_a_list_is_left_and_the_next_one_read(
    sandbox_app, sandbox_client, pump, catcher, monkeypatch, event, listing
):
    flt = {name: value for name, value in zip(("tenantId", "clientId"), pump, strict=True)}
    sub = subscribe_to(sandbox_client, event, catcher.url + "/hook",
                       **{n: flt[n] for n in KINDS[event].filter})  # fmt: skip
    events = sandbox_app.extensions["events"]
    w = watcher(sandbox_app)
    real = events.engine.run
    monkeypatch.setattr(events.engine, "run", lambda *a, **k: Answer(listing))
    assert w.round() is True  # no crash
    monkeypatch.setattr(events.engine, "run", real)
    new_client(sandbox_client, pump[0], "valve")
    upload(sandbox_client, pump, "a.bin")
    publish(sandbox_client, pump, 1)
    w.round()
    assert [b["type"] for b in verified_for(catcher, sub)] == [event]


def test_items_without_a_key_are_left_and_the_rest_compared(
    sandbox_app, sandbox_client, pump, catcher, monkeypatch
):
    sub = subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=pump[0])
    events = sandbox_app.extensions["events"]
    w = watcher(sandbox_app)
    w.round()
    valve = new_client(sandbox_client, pump[0], "valve")
    real = events.engine.run
    odd = [{"name": "no id"}, "text", {"id": {"nested": 1}}]
    monkeypatch.setattr(events.engine, "run", lambda *a, **k: Answer(odd + real(*a, **k).result))
    w.round()
    assert [b["data"]["id"] for b in verified_for(catcher, sub)] == [valve]


def test_a_listing_longer_than_the_cap_is_not_compared_and_the_snapshot_stays(
    sandbox_app, sandbox_client, pump, catcher, monkeypatch
):
    sub = subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=pump[0])
    store = sandbox_app.extensions["events"].store
    w = watcher(sandbox_app)
    w.round()
    kept = store.snapshot(f"client.created:{pump[0]}")
    assert len(kept["keys"]) == 1
    monkeypatch.setattr(watcher_module, "MAX_SNAPSHOT_KEYS", 1)
    valve = new_client(sandbox_client, pump[0], "valve")
    w.round()
    assert catcher.calls == [] and store.snapshot(f"client.created:{pump[0]}") == kept
    monkeypatch.undo()
    w.round()
    assert [b["data"]["id"] for b in verified_for(catcher, sub)] == [valve]


# -- the docs ------------------------------------------------------------------------------


def readme_events() -> dict[str, list[str]]:
    """The README's table of events: event -> its cells."""
    from tests.support.servers import ROOT

    text = (ROOT / "README.md").read_text()
    section = text.split("### Events\n", 1)[1].split("\n### ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| `")]
    rows = rows[1:]  # the header row: | `event` | ...
    return {cells[0].strip().strip("`"): [c.strip() for c in cells[1:]] for cells in rows}


def test_the_readme_lists_each_event_with_its_filter_block_and_data():
    table = readme_events()
    assert list(table) == list(EVENTS)
    for name, (flt, read, data) in table.items():
        kind = KINDS[name]
        required, _, optional = flt.partition(";")
        assert required.replace("`", "").split(", ") == list(kind.filter)
        assert [o.strip().strip("`") for o in optional.split(",") if o.strip()] == list(
            kind.optional
        )
        assert read.startswith(kind.block) and data == kind.data


@pytest.mark.parametrize("short", [[], "one client fewer"], ids=["empty", "short"])
def test_one_short_listing_does_not_make_the_clients_before_it_new(
    sandbox_app, sandbox_client, pump, catcher, monkeypatch, short
):
    # The snapshot was the last listing alone: after one empty (or short) answer, the next
    # whole one made every client new, those older than the subscription too.
    sub = subscribe_to(sandbox_client, "client.created", catcher.url + "/hook", tenantId=pump[0])
    other = new_client(sandbox_client, pump[0], "valve")  # before the first poll: it is new
    events = sandbox_app.extensions["events"]
    w = watcher(sandbox_app)
    w.round()  # the baseline
    assert [b["data"]["id"] for b in verified_for(catcher, sub)] == [other]
    real = events.engine.run

    def answered(invocation, block, args):
        listed = real(invocation, block, args)
        if short == []:
            return Answer([])
        return Answer([c for c in listed.result if c["id"] != pump[1]])

    monkeypatch.setattr(events.engine, "run", answered)
    w.round()
    monkeypatch.setattr(events.engine, "run", real)
    w.round()
    assert [b["data"]["id"] for b in verified_for(catcher, sub)] == [other]
