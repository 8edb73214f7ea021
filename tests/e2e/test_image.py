"""The image, built and started the way an operator's engine would (issue 26).

.ci/build-image builds the Dockerfile from this checkout with podman, on a local stand-in for
python:3.11-slim (.ci/base-image: Debian bookworm's python3 3.11 by mmdebstrap, made once per
machine). podman cannot start a container here (it may not set the resource limits it wants), so
`buildah run --isolation chroot` starts the built image: its root, its user, its working
directory, its environment and the command read from its own configuration.

Each container runs with the host's network inside a network namespace of the test's own with
only loopback up (tests/support/netns.py): it listens where the image says (0.0.0.0:8080, as
`docker run -p 8080:8080` needs), compose's health checks run as written, and nothing can leave.
Not proven here: Docker's own engine and the real base image, resource limits, compose itself
and the nginx in front (tests/test_deploy.py holds compose.yaml to the image without an engine).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.metrics import in_flight
from tests.support.netns import Netns
from tests.support.servers import ROOT
from tests.support.waiting import wait_until
from tests.test_deploy import (
    compose,
    environment,
    graceful_timeout,
    image_services,
    seconds,
)

pytestmark = pytest.mark.slow

TAG = "instamsg-connector:test"
#: the uid the Dockerfile gives its user
IMAGE_UID = 10001
#: a cold build (the stand-in base, then pip) on a loaded 2-core machine takes minutes
BUILD_TIMEOUT = 1800
#: how long a started container may take to answer (a loaded machine is slow, not broken)
START_TIMEOUT = 120.0
APP = {"clientKey": "demo-key", "clientSecret": "demo-secret"}
TENANT = {"name": "Farm", "maxClients": 10, "maxMessages": 1000}


class Image:
    """The built image in .ci/base-image's store, and its configuration (Docker's format)."""

    def __init__(self, storage_conf: str):
        self.env = {**os.environ, "CONTAINERS_STORAGE_CONF": storage_conf}
        (inspected,) = json.loads(self.tool("podman", "image", "inspect", TAG))
        self.config = inspected["Config"]
        #: the HEALTHCHECK, kept beside the configuration in Docker's format
        self.health_check = inspected["Healthcheck"]

    def tool(self, *command: str, check=True, timeout=300, **options) -> str:
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout, **options
        )
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(command[:3])} failed: {done.stderr[-2000:]}")
        return done.stdout.strip()

    @property
    def command(self) -> list[str]:
        return self.config["Cmd"]

    @property
    def settings(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config["Env"])

    @property
    def port(self) -> int:
        (exposed,) = self.config["ExposedPorts"]
        return int(exposed.split("/")[0])


@pytest.fixture(scope="module")
def image() -> Image:
    built = subprocess.run(
        ["bash", ".ci/build-image", TAG],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if built.returncode != 0:
        pytest.fail("the image did not build:\n" + built.stderr[-4000:])
    return Image(built.stdout.strip().splitlines()[-1])


class Container:
    """A working container of the image, in the namespace ``ns``: ``start`` runs its command,
    ``run`` runs another in it (as ``docker exec`` does), ``get``/``post`` reach it."""

    def __init__(self, image: Image, ns: Netns, env=None, hosts=()):
        self.image, self.ns = image, ns
        self.name = "instamsg-test-" + uuid.uuid4().hex[:12]
        added = [f"--add-host={host}:127.0.0.1" for host in hosts]
        image.tool("buildah", "from", "--pull-never", "--name", self.name, *added, TAG)
        settings = [f"--env={name}={value}" for name, value in (env or {}).items()]
        if settings:  # like `docker run -e`: every process of the container has them
            image.tool("buildah", "config", *settings, self.name)
        self.base = f"http://127.0.0.1:{(env or {}).get('PORT', image.port)}"
        # Its output goes to a file (a pipe nobody reads would stall it); closed by remove().
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def buildah_run(self, *args: str) -> list[str]:
        return ["buildah", "run", "--isolation", "chroot", "--network", "host", *args]

    def start(self, command=None) -> None:
        command = command or self.image.command
        self.process = self.ns.run(
            subprocess.Popen,
            self.buildah_run(self.name, "--", *command),
            env=self.image.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self.answers, within=START_TIMEOUT)

    def answers(self) -> bool:
        assert self.process.poll() is None, "the container exited:\n" + self.output()[-2000:]
        try:
            return self.get("/healthz").status_code == 200
        except requests.ConnectionError:
            return False

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def run(self, *command: str, env=None) -> subprocess.CompletedProcess:
        extra = [f"--env={name}={value}" for name, value in (env or {}).items()]
        return self.ns.run(
            subprocess.run,
            self.buildah_run(*extra, self.name, "--", *command),
            env=self.image.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def get(self, path: str, **options) -> requests.Response:
        return self.ns.run(requests.get, self.base + path, timeout=10, **options)

    def post(self, path: str, **options) -> requests.Response:
        options.setdefault("timeout", 30)
        return self.ns.run(requests.post, self.base + path, **options)

    def main_process(self) -> int:
        """The pid of the container's first process (what `docker stop` signals): the first
        one under buildah's own processes."""
        pending = [self.process.pid]
        while pending:
            pid = pending.pop(0)
            with contextlib.suppress(FileNotFoundError):
                program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                if b"buildah" not in program:
                    return pid
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pending += [int(c) for c in (task / "children").read_text().split()]
        raise AssertionError("the container's command is not running")

    def stop(self, sig=signal.SIGTERM) -> None:
        with contextlib.suppress(ProcessLookupError, AssertionError):
            os.kill(self.main_process(), sig)

    def remove(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
            try:
                self.process.wait(timeout=graceful_timeout() + 10)
            except subprocess.TimeoutExpired:
                self.stop(signal.SIGKILL)
                self.process.wait(timeout=30)
        self.log.close()
        self.image.tool("buildah", "rm", self.name, check=False)


@contextlib.contextmanager
def started(image: Image, env=None, hosts=(), command=None):
    """A container of ``image`` running ``command`` (the image's own by default) in a network
    namespace of its own, removed at the end."""
    with Netns() as ns:
        container = Container(image, ns, env, hosts)
        try:
            container.start(command)
            yield container
        finally:
            container.remove()


@pytest.fixture(scope="module")
def container(image):
    with started(image) as running:
        yield running


def uids(pid: int) -> set[int]:
    """The real and effective uids of ``pid`` and of its children."""
    found = set()
    for each in [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]:
        line = re.search(r"^Uid:\s+(\d+)\s+(\d+)", Path(f"/proc/{each}/status").read_text(), re.M)
        found |= {int(line.group(1)), int(line.group(2))}
    return found


def test_it_runs_its_own_command_as_its_own_user(image, container):
    assert image.config["User"] == "connector"
    assert uids(container.main_process()) == {IMAGE_UID}


def test_it_listens_on_every_address_at_its_exposed_port(image, container):
    assert f'"address": "0.0.0.0:{image.port}"' in container.output()


def test_its_probes_and_a_block_answer_in_sandbox_mode(container):
    assert container.get("/healthz").json() == {"status": "ok"}
    assert container.get("/readyz").json() == {"status": "ready", "store": "sqlite"}
    token = container.post("/blocks/getAccessToken", json=APP)
    assert token.status_code == 200, token.text
    access = token.json()["contextWrites"]["to"]["access_token"]
    tenant = container.post("/blocks/createTenant", json={"accessToken": access, **TENANT})
    assert tenant.status_code == 200 and tenant.json()["callback"] == "success", tenant.text


def health_check(image: Image) -> list[str]:
    kind, *command = image.health_check["Test"]
    return ["/bin/sh", "-c", *command] if kind == "CMD-SHELL" else command


def test_its_health_check_passes_inside_it_and_fails_with_nothing_to_answer(image, container):
    command = health_check(image)
    passed = container.run(*command)
    assert passed.returncode == 0, passed.stderr[-1000:]
    # The same check against a port nothing listens on fails: it checks something.
    assert container.run(*command, env={"PORT": str(image.port + 1)}).returncode != 0


def test_its_user_reads_its_code_and_cannot_change_it(image, container):
    code = image.config["WorkingDir"]
    checked = container.run("sh", "-c", f'test -r "{code}/app.py" && ! test -w "{code}/app.py"')
    assert checked.returncode == 0


def test_its_data_directory_is_written_by_its_user(image, container):
    data = image.settings["INSTAMSG_DATA_DIR"]
    assert container.post("/blocks/getAccessToken", json=APP).status_code == 200
    written = container.run("sh", "-c", f'touch "{data}/probe" && stat -c "%u %n" "{data}"/*')
    assert written.returncode == 0, written.stderr
    owners = dict(line.split(" ", 1)[::-1] for line in written.stdout.split("\n") if line)
    assert f"{data}/sandbox.sqlite3" in owners and f"{data}/probe" in owners
    assert set(owners.values()) == {str(IMAGE_UID)}


def test_the_image_holds_the_checkout_and_nothing_git_ignores(image):
    name = "instamsg-files-" + uuid.uuid4().hex[:12]
    image.tool("buildah", "from", "--pull-never", "--name", name, TAG)
    try:
        root = Path(image.tool("buildah", "mount", name)) / image.config["WorkingDir"].lstrip("/")
        held = {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}
    finally:
        image.tool("buildah", "umount", name, check=False)
        image.tool("buildah", "rm", name, check=False)

    def git(*args: str) -> set[str]:
        listed = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True)
        return set(listed.stdout.decode().split("\0")) - {""}

    tracked = {path for path in git("ls-files", "-z") if (ROOT / path).is_file()}
    ignored = git("ls-files", "-z", "--others", "--ignored", "--exclude-standard")
    assert {path for path in tracked if not path.startswith("tests/")} <= held
    assert not held & ignored, sorted(held & ignored)[:20]
    assert not {path for path in held if path.startswith("tests/")}


def test_sigterm_ends_it_within_the_graceful_timeout_and_a_call_in_flight_finishes(image):
    # Where `docker run -e HOST=... -e PORT=...` says (gunicorn.conf.py reads both).
    where = {"HOST": "127.0.0.1", "PORT": str(image.port + 1)}
    with started(image, env=where) as running:
        assert f'"address": "127.0.0.1:{where["PORT"]}"' in running.output()
        rule = {"fault": "slow", "delay": 5, "path": "/oauth2/token"}
        assert running.post("/_sandbox/faults", json=rule).status_code == 201
        # The caller is a process in the namespace: the namespace's one thread stays free.
        caller = running.ns.run(
            subprocess.Popen,
            [
                sys.executable,
                "-c",
                CALLER,
                running.base + "/blocks/getAccessToken",
                json.dumps(APP),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: running.ns.run(in_flight, running.base) == 1, within=START_TIMEOUT)
        running.stop()  # SIGTERM, what `docker stop` sends
        assert running.process.wait(timeout=graceful_timeout()) == 0
        assert caller.communicate(timeout=30)[0].split() == ["200", "success"]


CALLER = """import json, sys, requests
answer = requests.post(sys.argv[1], json=json.loads(sys.argv[2]), timeout=60)
print(answer.status_code, answer.json()["callback"])
"""


def distinct(names: list[str]) -> list[str]:
    """One name of each group of services that compose runs alike."""
    seen = {}
    for name in names:
        seen.setdefault(json.dumps(image_services()[name], sort_keys=True), name)
    return sorted(seen.values())


@contextlib.contextmanager
def redis_as_compose_runs_it(ns: Netns, spec: dict):
    """compose's redis service with Debian's redis-server standing in for its image: its
    command, its default port, its health check, in the namespace."""
    program, *options = spec["command"]
    assert program == "redis-server"
    with tempfile.TemporaryDirectory() as folder:
        process = ns.run(
            subprocess.Popen,
            [shutil.which(program) or program, *options],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        kind, *check = spec["healthcheck"]["test"]
        assert kind == "CMD"

        def healthy() -> bool:
            done = ns.run(subprocess.run, check, capture_output=True, text=True, timeout=10)
            return done.returncode == 0 and done.stdout.strip() == "PONG"

        try:
            wait_until(healthy, within=START_TIMEOUT)
            yield check
        finally:
            process.terminate()
            process.wait(timeout=10)


#: the services compose's image services depend on, each with a stand-in on this machine
STAND_INS = {"redis": redis_as_compose_runs_it}


@pytest.mark.parametrize("name", distinct(sorted(image_services())))
def test_a_compose_service_of_the_image_starts_and_is_healthy_as_compose_runs_it(image, name):
    spec = image_services()[name]
    settings = environment(spec)
    needs = list(spec.get("depends_on", {}))
    with Netns() as ns, contextlib.ExitStack() as stack:
        for service in needs:
            stack.enter_context(STAND_INS[service](ns, compose()["services"][service]))
        # The names of the services it needs reach their stand-ins, as compose's network does.
        container = Container(image, ns, settings, hosts=needs)
        stack.callback(container.remove)
        container.start(spec.get("command"))
        kind, *check = spec["healthcheck"]["test"]
        healthy = container.run(*check)
        assert kind == "CMD" and healthy.returncode == 0, healthy.stderr[-1000:]
        store = "redis" if settings.get("REDIS_URL") else "sqlite"
        assert container.get("/readyz").json() == {"status": "ready", "store": store}
        key = {"Idempotency-Key": "compose-" + uuid.uuid4().hex}
        token = container.post("/blocks/getAccessToken", json=APP).json()["contextWrites"]["to"]
        tenant = {"accessToken": token["access_token"], **TENANT}
        first = container.post("/blocks/createTenant", json=tenant, headers=key)
        again = container.post("/blocks/createTenant", json=tenant, headers=key)
        assert first.status_code == again.status_code == 200, first.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        if store == "redis":  # the key is in compose's Redis
            prefix = settings.get("REDIS_PREFIX", "instamsg-connector:")
            keys = ns.run(
                subprocess.run,
                ["redis-cli", "--scan", "--pattern", prefix + "*"],
                capture_output=True,
                text=True,
            )
            assert keys.stdout.strip(), "nothing was written to Redis"
        container.stop()
        assert container.process.wait(timeout=seconds(spec["stop_grace_period"])) == 0
