"""The signature checks of the generated packages (the n8n instant trigger's lib/signature.js,
the Zapier app's signedBy in lib/runtime.js), run in Node against signatures made by the
`standardwebhooks` library, the connector's own: a delivery the connector signs passes; one
tampered with, under another secret, outside the tolerance or unsigned does not."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from tests.support.servers import ROOT

#: Runs Node (installed once per machine by .ci/node).
pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER = "whsec_" + base64.b64encode(bytes(32)).decode()
BODY = json.dumps({"type": "message.received", "data": {"id": "7", "payload": "21.5"}})
#: The tolerance both packages keep (seconds), and a step past it.
TOLERANCE = 5 * 60
CHECKERS = {
    "n8n": ("integrations/n8n/lib/signature.js", "verified", ""),
    "zapier": ("integrations/zapier/lib/runtime.js", "signedBy", "Http-"),
}


def signed(at: datetime, secret=SECRET, body=BODY) -> dict:
    return {
        "webhook-id": "msg_7",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_7", at, body),
    }


def node_bin() -> str:
    folder = subprocess.run(
        ["bash", ".ci/node"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    return f"{folder}/node"


now = datetime.now(UTC)
CASES = [
    ("signed by the connector", signed(now), SECRET, BODY, True),
    ("body changed", signed(now), SECRET, BODY.replace("21.5", "99.9"), False),
    ("another secret", signed(now), OTHER, BODY, False),
    ("signed too long ago", signed(now - timedelta(seconds=TOLERANCE + 5)), SECRET, BODY, False),
    ("dated in the future", signed(now + timedelta(seconds=TOLERANCE + 5)), SECRET, BODY, False),
    ("unsigned", {"webhook-id": "msg_7", "webhook-timestamp": "1"}, SECRET, BODY, False),
    (
        "one good signature among others",
        {**signed(now), "webhook-signature": "v1,AAAA " + signed(now)["webhook-signature"]},
        SECRET,
        BODY,
        True,
    ),
]


@pytest.mark.parametrize("package", sorted(CHECKERS))
@pytest.mark.parametrize(
    ("headers", "secret", "body", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_packages_accept_only_what_the_connector_signed(
    package, headers, secret, body, expected
):
    path, function, prefix = CHECKERS[package]
    headers = {prefix + name: value for name, value in headers.items()}
    script = (
        f"const {{ {function} }} = require({json.dumps(str(ROOT / path))});"
        "const [secret, headers, body] = JSON.parse(process.argv[1]);"
        f"console.log(JSON.stringify({function}(secret, headers, body)));"
    )
    done = subprocess.run(
        [node_bin(), "-e", script, json.dumps([secret, headers, body])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is expected
