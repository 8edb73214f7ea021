"""Run the Zapier app's checks against a connector in sandbox mode, in this network namespace.

tests/faces/test_zapier.py starts this module inside `unshare -n` with only loopback up, so the
connector, Zapier's CLI and node share a network that reaches nothing else. It starts the
connector (gunicorn, sandbox mode, an API key required), then runs
`zapier-platform validate --without-style` and the app's node tests with zapier-platform-core's
createAppTester, and exits with the first failure's status. The connector's event watcher runs
beside it (`flask --app app events watch`, sending deliveries itself) for the REST-hook trigger;
the delivery the node test catches is then checked here with the standardwebhooks library.
Usage:

    python -m tests.support.zapier_run NODE_BIN_DIR
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from standardwebhooks import Webhook

from tests.support.servers import ROOT, gunicorn, stop

APP = ROOT / "integrations" / "zapier"
API_KEY = "zapier-test-key"
#: The watcher's poll interval here (the default is 5 s), so the hook test waits less.
EVENTS_POLL_SECONDS = "0.5"


def verify_delivery(path: Path) -> int:
    """The delivery the hook test caught, checked with the standardwebhooks library."""
    if not path.is_file():
        print("no delivery was caught by the hook test", flush=True)
        return 1
    caught = json.loads(path.read_text())
    Webhook(caught["secret"]).verify(caught["content"], caught["headers"])
    body = json.loads(caught["content"])
    assert body["type"] == "message.received" and body["data"]["payload"] == "22.5", body
    print("delivery verified with standardwebhooks", flush=True)
    return 0


def main(node_bin: str) -> int:
    env = {
        **os.environ,
        "PATH": f"{node_bin}:{os.environ.get('PATH', '')}",
        "DISABLE_ZAPIER_ANALYTICS": "1",
        # zapier-platform-core raises its output checks (trigger ids, ...) only when testing.
        "NODE_ENV": "test",
    }
    cli = str(APP / "node_modules" / ".bin" / "zapier-platform")
    for command in ([cli, "--version"], [cli, "validate", "--without-style"]):
        print("$ zapier-platform " + " ".join(command[1:]), flush=True)
        status = subprocess.run(command, cwd=APP, env=env, timeout=300).returncode
        if status:
            return status
    with (
        tempfile.TemporaryDirectory() as data,
        gunicorn(
            {
                "INSTAMSG_SANDBOX": "1",
                "INSTAMSG_DATA_DIR": data,
                "CONNECTOR_API_KEYS": API_KEY,
            },
            workers=1,
        ) as (base, server),
    ):
        watcher = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "events", "watch"],
            cwd=ROOT,
            env={
                **os.environ,
                "INSTAMSG_SANDBOX": "1",
                "INSTAMSG_DATA_DIR": data,
                "EVENTS_POLL_SECONDS": EVENTS_POLL_SECONDS,
                "EVENTS_QUEUED": "0",
            },
            start_new_session=True,
        )
        delivery = Path(data) / "delivery.json"
        print(f"$ node --test test/app.test.js  (CONNECTOR_URL={base})", flush=True)
        try:
            status = subprocess.run(
                ["node", "--test", "--test-reporter=tap", "test/app.test.js"],
                cwd=APP,
                env={
                    **env,
                    "CONNECTOR_URL": base,
                    "CONNECTOR_API_KEY": API_KEY,
                    "DELIVERY_FILE": str(delivery),
                },
                timeout=300,
            ).returncode
        finally:
            stop(watcher)
        if status:
            print("--- connector log ---\n" + server.output()[-6000:], flush=True)
            return status
        return verify_delivery(delivery)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
