"""Run the Zapier app's checks against a connector in sandbox mode, in this network namespace.

tests/faces/test_zapier.py starts this module inside `unshare -n` with only loopback up, so the
connector, Zapier's CLI and node share a network that reaches nothing else. It starts the
connector (gunicorn, sandbox mode, an API key required), then runs
`zapier-platform validate --without-style` and the app's node tests with zapier-platform-core's
createAppTester, and exits with the first failure's status. Usage:

    python -m tests.support.zapier_run NODE_BIN_DIR
"""

import os
import subprocess
import sys
import tempfile

from tests.support.servers import ROOT, gunicorn

APP = ROOT / "integrations" / "zapier"
API_KEY = "zapier-test-key"


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
        print(f"$ node --test test/app.test.js  (CONNECTOR_URL={base})", flush=True)
        status = subprocess.run(
            ["node", "--test", "--test-reporter=tap", "test/app.test.js"],
            cwd=APP,
            env={**env, "CONNECTOR_URL": base, "CONNECTOR_API_KEY": API_KEY},
            timeout=300,
        ).returncode
        if status:
            print("--- connector log ---\n" + server.output()[-6000:], flush=True)
        return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
