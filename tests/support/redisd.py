"""A real redis-server for tests, on a free 127.0.0.1 port, with nothing kept on disk.

``RedisServer`` starts Debian's ``redis-server`` (installed by .ci/run when missing) bound to
loopback only, in a temporary directory, with persistence off (``options`` turn it on:
``("--appendonly", "yes")``). ``stop()`` (SIGTERM) or ``kill()`` (SIGKILL) and ``start()``
make an outage and a recovery on the same port and directory, so a client made before the
outage is the one that must recover. The ``redisd`` fixture always stops it at the end.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.servers import free_port

LOOPBACK = "127.0.0.1"
#: how long a start may take before the test fails (a loaded CI machine is slow, not broken)
START_TIMEOUT = 15.0


def answers_ping(port: int) -> bool:
    """Whether a Redis on ``port`` answers PING (a raw RESP exchange: no client state).
    A server with a password answers NOAUTH: it is up all the same."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:<port>``; ``url`` reaches it (with the
    password in it when the server requires one)."""

    def __init__(
        self, directory: str | Path | None = None, password: str | None = None, options=()
    ):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed, and the Redis tests need a real one. "
                "Install it with `apt-get install -y redis-server` (.ci/run does this in CI)."
            )
        self.binary = binary
        self.dir = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="redisd-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}{LOOPBACK}:{self.port}/0"
        self.process: subprocess.Popen | None = None
        #: more redis-server options (``--maxmemory 60mb``...), after the defaults: they win
        self.options = list(options)

    @property
    def log(self) -> Path:
        return self.dir / "redis.log"

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        if self.process is not None:
            return
        auth = ["--requirepass", self.password] if self.password else []
        self.process = subprocess.Popen(
            [
                self.binary,
                *auth,
                "--bind", LOOPBACK,
                "--port", str(self.port),
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "no",
                "--protected-mode", "yes",
                "--daemonize", "no",
                "--logfile", str(self.log),
                *self.options,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not answers_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                self.stop()
                raise RuntimeError(
                    f"redis-server did not answer PING on {LOOPBACK}:{self.port}; its log:\n{tail}"
                )
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM) -> None:
        """Stop it (SIGTERM: it shuts down cleanly); the port stays this server's for a
        later ``start()``."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill it (SIGKILL): no shutdown, so what its persistence had not yet written is
        lost, as when a machine dies."""
        self.stop(signal.SIGKILL)


@contextmanager
def redis_server(directory=None, password=None, options=()):
    """A started ``RedisServer``, stopped at the end whatever happens."""
    server = RedisServer(directory, password, options)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(name="redisd")
def redisd_fixture(tmp_path):
    """``redisd``: a real redis-server for one test. Import ``redisd_fixture`` into a test
    module (or a conftest) to use it."""
    with redis_server(tmp_path / "redis") as server:
        yield server
