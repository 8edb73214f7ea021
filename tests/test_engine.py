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

APP = {"clientKey": "demo-key", "clientSecret": "demo-secret"}


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
