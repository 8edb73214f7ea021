"""openapi.json as third-party tools read it: openapi-spec-validator passes it, and a client
that openapi-python-client generates from it (in this test run, offline) calls the
sandbox-mode connector over loopback and reads typed results."""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from connector.generate import __main__ as docs_main
from tests.support.browser import serve

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

GENERATOR = shutil.which("openapi-python-client") or str(
    Path(sys.executable).parent / "openapi-python-client"
)


def test_the_document_validates():
    from openapi_spec_validator import validate

    validate(json.loads(docs_main.OPENAPI_FILE.read_text()))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The generated package ``instamsg_gen``, importable."""
    # Installed by requirements-dev.txt: missing, the test fails rather than skips.
    assert os.path.exists(GENERATOR), "openapi-python-client is not installed (make test does)"
    root = tmp_path_factory.mktemp("generated")
    out = root / "instamsg_gen"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [GENERATOR, "generate", "--path", str(docs_main.OPENAPI_FILE)]
        + ["--output-path", str(out), "--meta", "none"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("instamsg_gen")
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n.startswith("instamsg_gen")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """The sandbox-mode connector on a loopback port, served by werkzeug in a thread."""
    app = create_app({"sandbox": True, "data_dir": str(tmp_path_factory.mktemp("sandbox"))})
    with serve(app) as base:
        yield base


def test_a_generated_client_runs_blocks_and_reads_typed_results(generated, base_url):
    api = importlib.import_module("instamsg_gen.api")  # noqa: F841 (the package exists)
    models = importlib.import_module("instamsg_gen.models")
    client = importlib.import_module("instamsg_gen.client").Client(base_url=base_url)
    token_api = importlib.import_module("instamsg_gen.api.token.get_access_token")
    tenant_api = importlib.import_module("instamsg_gen.api.tenants.create_tenant")
    client_api = importlib.import_module("instamsg_gen.api.clients.create_client")
    publish_api = importlib.import_module("instamsg_gen.api.messages.publish_message")

    answer = token_api.sync(
        client=client,
        body=models.GetAccessToken(client_key="demo-key", client_secret="demo-secret"),
    )
    assert isinstance(answer, models.GetAccessTokenSuccess), answer
    token = answer.context_writes.to.access_token
    assert isinstance(token, str) and token

    answer = tenant_api.sync(
        client=client,
        body=models.CreateTenant(
            access_token=token, name="Company 1", max_clients=2, max_messages=10
        ),
    )
    assert isinstance(answer, models.CreateTenantSuccess), answer
    tenant = answer.context_writes.to
    assert isinstance(tenant, models.Tenant)
    assert (tenant.name, tenant.max_clients) == ("Company 1", 2)

    answer = client_api.sync(
        client=client,
        body=models.CreateClient(
            access_token=token,
            tenant_id=tenant.id,
            type_=models.CreateClientType.DEVICE,
            name="pump-7",
            provisioning_id="356938035643809",
            pub_topics=["pub1"],
        ),
    )
    assert isinstance(answer, models.CreateClientSuccess), answer
    device = answer.context_writes.to
    assert device.pub_topics == ["pub1"] and device.tenant_id == tenant.id

    answer = publish_api.sync(
        client=client,
        body=models.PublishMessage(
            access_token=token,
            tenant_id=tenant.id,
            client_id=device.id,
            id=7,
            type_=models.PublishMessageType.PUB,
            topic="pub1",
            payload="21.5",
            qos=1,
        ),
    )
    assert isinstance(answer, models.PublishMessageSuccess), answer
    assert answer.context_writes.to.message_id

    # The error envelope is typed too: the credential rule, refused before the wire.
    answer = tenant_api.sync(
        client=client,
        body=models.CreateTenant(name="x", max_clients=0, max_messages=0),
    )
    assert isinstance(answer, models.ErrorEnvelope)
    assert answer.context_writes.to.status_code.value == "REQUIRED_FIELDS"
