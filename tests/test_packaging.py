"""The Docker image starts exactly what `make run` starts, so the gunicorn tests cover both."""

import json
import re
import shlex

from tests.support.servers import ROOT


def make_run_command():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n")[1]
    command = recipe.split("$(BIN)/", 1)[1]
    return shlex.split(command)


def docker_command():
    line = re.search(r"^CMD (.+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    return json.loads(line)


def test_the_image_runs_the_make_run_command():
    assert (
        docker_command()
        == make_run_command()
        == ["gunicorn", "-c", "gunicorn.conf.py", "app:serve()"]
    )


def test_the_image_is_slim_non_root_and_checks_health():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def fake_tools(folder, system, node_major=None):
    """A PATH folder whose uname says ``system`` and whose node (if any) is that major."""
    folder.mkdir()
    (folder / "uname").write_text(f'#!/bin/sh\n[ "$1" = -s ] && echo {system} || echo arm64\n')
    if node_major:
        (folder / "node").write_text(f"#!/bin/sh\necho {node_major}\n")
    for tool in folder.iterdir():
        tool.chmod(0o755)
    return str(folder)


def test_on_macos_node_is_the_machines_own_when_new_enough(tmp_path):
    """The registry's Node builds are Linux's: .ci/node uses a Mac's own Node 22+, and says
    what to install when there is none (README, "Use it from Zapier")."""
    import subprocess

    def node_folder(folder):
        env = {"PATH": f"{folder}:/usr/bin:/bin", "HOME": str(tmp_path)}
        return subprocess.run(
            ["bash", str(ROOT / ".ci" / "node")], env=env, capture_output=True, text=True
        )

    good = fake_tools(tmp_path / "mac-22", "Darwin", node_major=22)
    done = node_folder(good)
    assert (done.returncode, done.stdout.strip()) == (0, good)
    old = node_folder(fake_tools(tmp_path / "mac-20", "Darwin", node_major=20))
    none = node_folder(fake_tools(tmp_path / "mac-none", "Darwin"))
    for refused in (old, none):
        assert refused.returncode == 1 and "brew install node" in refused.stderr
