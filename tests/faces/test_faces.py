"""Every face renders the engine's one answer: a replay, an OUTCOME_UNKNOWN and a store fault
reach the HTTP face, the CLI and the MCP server as the same envelope, from Engine.answer."""

import json

import pytest

from app import create_app
from connector.engine import Engine, Invocation
from connector.mcp import runners
from connector.state.store import unavailable
from tests.support.upstream import INSTAMSG, TOKEN, VALVE

MESSAGES = INSTAMSG + "/api/v1/tenants/t/clients/c/messages"
PUBLISH = {"accessToken": TOKEN, **VALVE, "payload": "open"}


@pytest.fixture
def faces(settings, monkeypatch):
    """The three faces of one app, each a function (args, key) -> (envelope, replayed), and
    the faces the engine's answer() was called for."""
    app = create_app(settings)
    engine = app.extensions["instamsg"]
    answered = []
    answer = Engine.answer

    def spied(self, inv, *args, **kwargs):
        answered.append(inv.face)
        return answer(self, inv, *args, **kwargs)

    monkeypatch.setattr(Engine, "answer", spied)
    http, cli = app.test_client(), app.test_cli_runner()

    def over_http(args, key):
        reply = http.post("/blocks/publishMessage", json=args, headers={"Idempotency-Key": key})
        return reply.json, reply.headers.get("Idempotent-Replayed") == "true"

    def in_cli(args, key):
        pairs = [f"{k}={v}" for k, v in args.items()]
        done = cli.invoke(
            args=["blocks", "call", "publishMessage", *pairs, "--idempotency-key", key]
        )
        return json.loads(done.stdout), None  # the CLI prints the envelope alone

    def over_mcp(args, key):
        return runners.run_in_process(engine, "publishMessage", args, key)

    return {"http": over_http, "cli": in_cli, "mcp": over_mcp}, answered, engine


def without_request_id(envelope):
    body = envelope["contextWrites"]["to"]
    return {
        **envelope,
        "contextWrites": {"to": {k: v for k, v in body.items() if k != "request_id"}},
    }


def test_a_replay_is_the_same_envelope_on_every_face(faces, mocked):
    by_face, answered, _ = faces
    mocked.post(MESSAGES, status=201, headers={"Location": "/m/m-1"})
    first, _ = by_face["http"](PUBLISH, "k-replay")
    for name, face in by_face.items():
        envelope, replayed = face(PUBLISH, "k-replay")
        assert envelope == first, name
        assert replayed in (True, None), name
    assert len(mocked.calls) == 1
    assert answered == ["blocks", "blocks", "cli", "mcp"]


def test_an_unknown_outcome_is_the_same_envelope_on_every_face(faces, mocked):
    by_face, answered, _ = faces
    mocked.post(MESSAGES, status=503)  # a publish is never sent again: InstaMsg may have acted
    first, _ = by_face["mcp"](PUBLISH, "k-unknown")
    assert first["contextWrites"]["to"]["status_code"] == "OUTCOME_UNKNOWN"
    for name, face in by_face.items():
        envelope, _ = face(PUBLISH, "k-unknown")
        assert without_request_id(envelope) == without_request_id(first), name
    assert len(mocked.calls) == 1
    assert answered == ["mcp", "blocks", "cli", "mcp"]


def test_a_store_fault_is_the_same_envelope_on_every_face(faces, nothing_sent, monkeypatch):
    by_face, answered, engine = faces

    def broken(*args):
        raise unavailable(fault="OperationalError")

    monkeypatch.setattr(engine.idempotency, "claim", broken)
    envelopes = {name: face(PUBLISH, "k-fault")[0] for name, face in by_face.items()}
    expected = without_request_id(Engine.failed(Invocation(), unavailable()).envelope)
    for name, envelope in envelopes.items():
        assert envelope["contextWrites"]["to"]["status_code"] == "IDEMPOTENCY_UNAVAILABLE"
        assert without_request_id(envelope) == expected, name
    assert answered == ["blocks", "cli", "mcp"]
