"""What the fault tests share: the connector under gunicorn against a recording upstream (a
``Loopback`` the test's fixture starts: gunicorn's workers are other processes, so InstaMsg
must be a real server on a port), its worker processes, and keyed publishes
(tests/e2e/test_faults.py, tests/e2e/test_fault_injection.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.servers import gunicorn
from tests.support.upstream import TOKEN, VALVE
from tests.support.waiting import wait_until

T = "/api/v1/tenants/t/clients/c"
MESSAGES = T + "/messages"
LOCATION = {"Location": MESSAGES + "/m-1"}
PUBLISH = {"accessToken": TOKEN, **VALVE}

#: Short settings: every deadline and lease of a keyed call in seconds, not minutes (the
#: upstream's URL, INSTAMSG_API_URL, is the test's own).
SHORT = {
    "INSTAMSG_SANDBOX": "0",
    "INSTAMSG_CONNECT_TIMEOUT": "0.2",
    "INSTAMSG_READ_TIMEOUT": "2",
    "INSTAMSG_DEADLINE": "1",
    "INSTAMSG_RETRY_BASE": "0.01",
    "INSTAMSG_RETRY_CAP": "0.05",
    "GUNICORN_GRACEFUL_TIMEOUT": "1",
}


@contextmanager
def connector(data_dir, upstream, workers=1, **env):
    """gunicorn serving the connector with SHORT settings (and ``env``) on ``data_dir``,
    calling ``upstream`` (a started Loopback) as InstaMsg."""
    settings = {
        **SHORT,
        "INSTAMSG_API_URL": upstream.url,
        "INSTAMSG_DATA_DIR": str(data_dir),
        **env,
    }
    with gunicorn(settings, workers=workers) as (base, master):
        yield base, master


def publish_over_http(base, key, payload, timeout=30, **args):
    """A publish whose payload names it, to the connector at ``base`` over real HTTP, on a
    connection of its own, under the Idempotency-Key ``key`` unless it is None; with
    clientKey and clientSecret in ``args``, on a managed token instead of the access token."""
    body = {**PUBLISH, "payload": payload, **args}
    if "clientKey" in args:
        del body["accessToken"]
    headers = {"Connection": "close", **({} if key is None else {"Idempotency-Key": key})}
    return requests.post(
        base + "/blocks/publishMessage", json=body, headers=headers, timeout=timeout
    )


def code(answer) -> str | None:
    return answer.json()["contextWrites"]["to"].get("status_code")


def stored(upstream, payload) -> int:
    """How many publishes carrying ``payload`` reached the recording ``upstream``."""
    return sum(
        1
        for call in upstream.calls
        if call.request.method == "POST"
        and call.request.url.endswith(MESSAGES)
        and payload.encode() in call.request.body
    )


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def workers_of(master, count=1, timeout=15.0) -> list[int]:
    """The master's live workers, once there are ``count`` of them."""

    def enough():
        pids = children(master.pid)
        return pids if len(pids) >= count else None

    return wait_until(
        enough,
        timeout,
        explain=lambda: f"gunicorn has {len(children(master.pid))} workers, not {count}",
    )


def kill(pid: int, sig=signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
