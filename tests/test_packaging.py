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
