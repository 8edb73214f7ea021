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


#: A step past the tolerance, either way.
PAST = TOLERANCE + 60
#: (case, seconds from now the delivery is signed at, or None: unsigned; signature entries put
#: before the real one; the secret the check holds; the body it gets; whether it passes).
#: Signed when the test runs, not when it is collected: time spent before cannot move a case.
CASES = [
    ("signed by the connector", 0, "", SECRET, BODY, True),
    ("body changed", 0, "", SECRET, BODY.replace("21.5", "99.9"), False),
    ("another secret", 0, "", OTHER, BODY, False),
    ("signed too long ago", -PAST, "", SECRET, BODY, False),
    ("dated in the future", PAST, "", SECRET, BODY, False),
    ("unsigned", None, "", SECRET, BODY, False),
    ("one good signature among others", 0, "v1,AAAA ", SECRET, BODY, True),
]


@pytest.mark.parametrize("package", sorted(CHECKERS))
@pytest.mark.parametrize(
    ("offset", "others", "secret", "body", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_packages_accept_only_what_the_connector_signed(
    package, offset, others, secret, body, expected
):
    path, function, prefix = CHECKERS[package]
    if offset is None:
        headers = {"webhook-id": "msg_7", "webhook-timestamp": "1"}
    else:
        headers = signed(datetime.now(UTC) + timedelta(seconds=offset))
        headers["webhook-signature"] = others + headers["webhook-signature"]
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
