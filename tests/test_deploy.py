"""deploy/compose.yaml held to the image and the README without a container engine: what each
service runs, the settings it names, its health check and its stop are what the Dockerfile,
gunicorn.conf.py and the README say. tests/e2e/test_image.py starts the image these services run.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.support.servers import ROOT
from tests.test_packaging import docker_command

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
NGINX = DEPLOY / "nginx.conf"
#: where the connector reads its settings (a setting compose names must be read in one of them)
SETTINGS_READERS = (ROOT / "connector" / "config.py", ROOT / "gunicorn.conf.py")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolated(value) -> str:
    """A compose value as compose gives it with nothing set in the environment:
    ``${NAME:-default}`` and ``${NAME-default}`` are their defaults, ``${NAME}`` is empty."""
    return re.sub(
        r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", str(value)
    )


def image_services() -> dict[str, dict]:
    """The services that run this repository's image (those compose builds)."""
    return {name: spec for name, spec in compose()["services"].items() if "build" in spec}


def environment(service: dict) -> dict[str, str]:
    return {name: interpolated(value) for name, value in service.get("environment", {}).items()}


def dockerfile_instruction(name: str) -> str:
    """The argument of the Dockerfile's (one) instruction ``name``, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return re.search(rf"^{name}\s+(.+)$", text, re.M).group(1).strip()


def image_port() -> str:
    env = dict(re.findall(r"(\w+)=(\S+)", dockerfile_instruction("ENV")))
    return env["PORT"]


def seconds(duration: str) -> float:
    """A compose or Dockerfile duration (``25s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def graceful_timeout() -> float:
    """gunicorn's graceful timeout as gunicorn.conf.py defaults it."""
    conf = (ROOT / "gunicorn.conf.py").read_text()
    return float(re.search(r'"GUNICORN_GRACEFUL_TIMEOUT", "(\d+)"', conf).group(1))


def probe(command: list[str]) -> tuple[str, str, float]:
    """The port, path and own timeout of a health check's ``urllib.request.urlopen`` call."""
    source = " ".join(command)
    found = re.search(r"http://127\.0\.0\.1:(?:' \+ [^+]+\+ ')?(\d*)(/\w+)'.*timeout=(\d+)", source)
    assert found, f"not a probe of the connector: {source}"
    return found.group(1), found.group(2), float(found.group(3))


def readme_settings() -> set[str]:
    """The variables of the README's Configuration table."""
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {
        name
        for row in re.findall(r"^\| (.+?) \|", section, re.M)
        for name in re.findall(r"`(\w+)`", row)
    }


def readme_probes() -> set[str]:
    return set(
        re.findall(
            r"^\| `GET (/\w+)` \| (?:liveness|readiness)", (ROOT / "README.md").read_text(), re.M
        )
    )


SERVICES = sorted(image_services())
SETTINGS = sorted(
    {(name, setting) for name, spec in image_services().items() for setting in environment(spec)}
)


def test_compose_runs_the_image_in_more_than_one_instance():
    assert len(SERVICES) >= 2


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_builds_this_repository_and_runs_the_image_command(name):
    service = image_services()[name]
    context = (DEPLOY / service["build"]["context"]).resolve()
    dockerfile = service["build"].get("dockerfile", "Dockerfile")
    assert context == ROOT and (context / dockerfile).exists()
    assert service.get("command", docker_command()) == docker_command()
    assert "entrypoint" not in service and "user" not in service  # the image's own


@pytest.mark.parametrize(("name", "setting"), SETTINGS)
def test_a_setting_compose_gives_is_documented_and_read(name, setting):
    assert setting in readme_settings(), f"{name}: {setting} is not in the README's table"
    assert any(f'"{setting}"' in path.read_text() for path in SETTINGS_READERS), (
        f"{name}: nothing reads {setting}"
    )


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_health_check_probes_the_image_port_within_its_timeout(name):
    check = image_services()[name]["healthcheck"]
    kind, *command = check["test"]
    assert kind == "CMD"  # exec form: the image has python, not necessarily a shell's tools
    port, path, own_timeout = probe(command)
    assert port == image_port() == environment(image_services()[name]).get("PORT", image_port())
    assert path in readme_probes()
    assert own_timeout < seconds(check["timeout"])  # the probe gives up before compose does


def test_the_image_health_check_probes_its_port_within_its_timeout():
    healthcheck = dockerfile_instruction("HEALTHCHECK")
    options, command = healthcheck.split(" CMD ", 1)
    port, path, own_timeout = probe([command])
    assert f"os.environ.get('PORT', '{image_port()}')" in command
    assert path in readme_probes()
    assert own_timeout < seconds(re.search(r"--timeout=(\S+)", options).group(1))


def test_the_image_exposes_the_port_it_listens_on():
    assert dockerfile_instruction("EXPOSE") == image_port()


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_is_given_longer_to_stop_than_gunicorn_lets_calls_finish(name):
    service = image_services()[name]
    grace = environment(service).get("GUNICORN_GRACEFUL_TIMEOUT", graceful_timeout())
    assert seconds(service["stop_grace_period"]) > float(grace)


def test_the_balancer_sends_to_every_instance_on_the_image_port():
    conf = NGINX.read_text()
    upstream = re.search(r"upstream connector \{(.*?)\}", conf, re.S).group(1)
    servers = set(re.findall(r"server (\S+?):(\d+)", upstream))
    assert servers == {(name, image_port()) for name in SERVICES}
    listen = re.search(r"listen (\d+);", conf).group(1)
    balancer = compose()["services"]["balancer"]
    assert [port.split(":")[-1] for port in balancer["ports"]] == [listen]
    assert set(balancer["depends_on"]) == set(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_instances_behind_the_balancer_count_its_hop(name):
    assert environment(image_services()[name])["PROXY_HOPS"] == "1"


def test_compose_values_are_read_as_compose_reads_them():
    cases = [
        ("${INSTAMSG_SANDBOX:-1}", "1"),
        ("${CONNECTOR_API_KEYS:-}", ""),
        ("${NAME-x}", "x"),
        ("${NAME}", ""),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
    ]
    assert [interpolated(value) for value, _ in cases] == [expected for _, expected in cases]
    assert [seconds(text) for text in ("25s", "1m30s", "500ms")] == [25, 90, 0.5]
