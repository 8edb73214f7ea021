"""The engine runs a block with no web framework: arguments in, a result or a ConnectorError
out; every face renders the same envelopes from it."""

import subprocess
import sys

import pytest

import blocks  # noqa: F401  (registers every block)
from connector.config import Settings
from connector.engine import Invocation
from connector.engine.build import build_engine
from connector.errors import RequiredFields, UnknownBlock
from schemas.envelopes import ErrorEnvelope, SuccessEnvelope
from tests.support.servers import ROOT
from tests.support.upstream import APP


@pytest.fixture
def engine(tmp_path):
    return build_engine(Settings(sandbox=True, data_dir=str(tmp_path)))


def test_a_flow_runs_through_the_engine_alone(engine):
    token = engine.run(Invocation(face="test"), "getAccessToken", dict(APP)).result
    inv = Invocation(face="test")
    args = {"accessToken": token["access_token"], "name": "Farm", "maxClients": 2}
    tenant = engine.run(inv, "createTenant", {**args, "maxMessages": 10, "to": "made"}).result
    assert tenant["name"] == "Farm"
    assert (inv.block, inv.code, inv.upstream_status, inv.context_key) == (
        "createTenant",
        "SUCCESS",
        201,
        "made",
    )
    envelope = engine.envelope(inv, "success", tenant)
    assert envelope == {"callback": "success", "contextWrites": {"made": tenant}}
    assert SuccessEnvelope().validate(envelope) == {}


def test_managed_tokens_work_without_an_access_token(engine):
    listed = engine.run(Invocation(), "getTenants", dict(APP)).result
    assert listed == []


def test_refusals_are_connector_errors_rendered_as_the_error_envelope(engine):
    inv = Invocation(request_id="r-1")
    with pytest.raises(RequiredFields) as refused:
        engine.run(inv, "createTenant", {"accessToken": "t", "nmae": "Farm"})
    envelope = engine.error_envelope(inv, refused.value)
    body = envelope["contextWrites"]["to"]
    assert body["status_code"] == "REQUIRED_FIELDS" and body["request_id"] == "r-1"
    assert envelope["warnings"] == [
        '"nmae" is not an argument of createTenant; did you mean "name"?'
    ]
    assert ErrorEnvelope().validate(envelope) == {}
    with pytest.raises(UnknownBlock):
        engine.run(Invocation(), "getTenant", {})
    named = Invocation()
    with pytest.raises(RequiredFields) as refused:
        engine.run(named, "createTenant", {"accessToken": "t", "to": "made"})
    assert ErrorEnvelope().validate(engine.error_envelope(named, refused.value)) == {}


def test_a_secret_never_reaches_an_error_envelope(engine):
    inv = Invocation()
    with pytest.raises(Exception) as refused:
        engine.run(inv, "getAccessToken", {"clientKey": "demo-key", "clientSecret": "s3cr3t-w0rd"})
    assert "s3cr3t-w0rd" not in str(engine.error_envelope(inv, refused.value))


def test_the_engine_and_the_blocks_import_no_web_framework():
    """Live mode: the engine, its upstream client and its stores, and no Flask (the sandbox,
    an app of its own, is loaded only in sandbox mode)."""
    code = (
        "import sys, blocks\n"
        "from connector.config import Settings\n"
        "from connector.engine.build import build_engine\n"
        "build_engine(Settings(sandbox=False))\n"
        "web = ('flask', 'flask_limiter', 'werkzeug', 'click')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in web))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def published(engine, key, **extra):
    """A publishMessage through Engine.call (as the CLI and MCP faces run it), under ``key``."""
    app = dict(APP)
    tenant = engine.run(
        Invocation(), "createTenant", {**app, "name": "Farm", "maxClients": 2, "maxMessages": 10}
    ).result["id"]
    client = engine.run(
        Invocation(),
        "createClient",
        {
            **app,
            "tenantId": tenant,
            "type": "device",
            "name": "pump",
            "provisioningId": "p-1",
            "pubTopics": ["t"],
        },
    ).result["id"]
    ids = {**app, "tenantId": tenant, "clientId": client}
    args = {**ids, "id": 1, "type": "pub", "topic": "t", "payload": "p", "qos": 1, **extra}
    answers = []
    for _ in range(2):
        inv = Invocation(face="test")
        envelope = engine.call(inv, "publishMessage", dict(args), key=key).envelope
        answers.append((envelope, inv.code))
    listing = engine.run(Invocation(), "getMessages", {**ids, "start": "2000-01-01"}).result
    return answers, listing


def test_call_keeps_an_idempotency_key_so_a_retry_publishes_once(engine):
    [(first, code_1), (again, code_2)], listing = published(engine, "flow-7-item-0")
    assert first["callback"] == "success" and again == first
    assert (code_1, code_2) == ("SUCCESS", "REPLAYED")
    assert len(listing) == 1


def test_call_without_a_key_publishes_every_time(engine):
    [(first, _), (again, code)], listing = published(engine, None)
    assert first["callback"] == again["callback"] == "success"
    assert code == "SUCCESS" and len(listing) == 2


def test_call_answers_a_key_reused_for_other_arguments_with_its_envelope(engine):
    inv = Invocation()
    args = {**APP, "name": "Farm", "maxClients": 2, "maxMessages": 10}
    engine.call(inv, "createTenant", dict(args), key="k-1")
    envelope = engine.call(
        Invocation(), "createTenant", {**args, "name": "Barn"}, key="k-1"
    ).envelope
    assert envelope["contextWrites"]["to"]["status_code"] == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    ("face", "hint"),
    [
        ("blocks", " GET /blocks lists them all."),
        ("rapid", " GET /blocks lists them all."),
        ("cli", " `flask --app app blocks list` lists them all."),
        ("mcp", " tools/list lists them all."),
        ("samples", "?"),  # a face with no listing names none
    ],
)
def test_an_unknown_block_is_told_where_the_callers_face_lists_them(engine, face, hint):
    with pytest.raises(UnknownBlock) as caught:
        engine.find(Invocation(face=face), "getTenant")
    assert caught.value.message.startswith("There is no block named 'getTenant'. Did you mean:")
    assert caught.value.message.endswith(hint)


def test_errors_are_built_whole():
    """Headers, nothing_sent and a fault are a ConnectorError's constructor arguments: no
    module of the connector sets them on an error after making it (STYLE.md, rule 11)."""
    import re

    # (an Invocation and a requests Response have such attributes of their own)
    patched = re.compile(
        r"^\s*(?!self\.|inv\.|response\.)\w+\.(headers|nothing_sent|fault|retry_after_s) = "
    )
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "connector").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if patched.match(line)
    ]
    assert found == []
