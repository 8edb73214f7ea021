"""Start the connector the way `make run` and the Dockerfile do, on a free loopback port."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(env=None, workers=2, timeout=20.0, port=None):
    """Yield the base URL of a running `gunicorn -c gunicorn.conf.py 'app:serve()'`."""
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:serve()"]
    env = {"WEB_CONCURRENCY": str(workers), **(env or {})}
    with serve(command, env, timeout, port=port) as running:
        yield running


@contextmanager
def serve(command, env, timeout=20.0, drop=(), port=None):
    """Run ``command`` (a server of this repo that reads HOST and PORT) on a free loopback
    port (or on ``port``: a server started again where it was); yield its base URL and the
    process, whose ``output()`` is what it printed. ``drop`` names environment variables it
    must not inherit."""
    port = port or free_port()
    full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **env}
    for name in drop:
        full_env.pop(name, None)
    # Output goes to a file: a pipe nobody reads would fill up and stall the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def output() -> str:
            log.seek(0)
            return log.read().decode("utf-8", "replace")

        process.output = output
        try:
            yield wait_until_up(f"http://127.0.0.1:{port}", process, timeout), process
        finally:
            stop(process)


def stop(process) -> None:
    """Stop the server and anything left of its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_until_up(base, process, timeout) -> str:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited: " + process.output()[-2000:])
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return base
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not answer /healthz in time")
        time.sleep(0.05)


def sandbox(tmp_path, deadline=2, **more):
    """The environment of a sandbox-mode connector whose clients get ``deadline`` seconds
    for their head and between body reads."""
    return {
        "INSTAMSG_SANDBOX": "1",
        "INSTAMSG_DATA_DIR": str(tmp_path),
        "CLIENT_HEADER_TIMEOUT": str(deadline),
        "CLIENT_BODY_TIMEOUT": str(deadline),
        # The embedded default, whatever the machine running the tests has set.
        "GUNICORN_WORKER_CLASS": "",
        "GUNICORN_LOGLEVEL": "info",
        **more,
    }


def address(base):
    parts = urlsplit(base)
    return parts.hostname, parts.port


#: The state /proc/net/tcp gives a listening socket.
LISTEN = "0A"


def unaccepted(base) -> int:
    """How many connections to the server at ``base`` wait in its listening socket's queue,
    not yet accepted by a worker. (Linux shows a listener's accept queue as its rx_queue in
    /proc/net/tcp: a connect() that returned is there until the server accepts it.)"""
    port = f":{address(base)[1]:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(port) and fields[3] == LISTEN:
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens at {base}")
