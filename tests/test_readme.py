"""The README's commands, run as written against `make run`'s server on a free port.

Not run here: `make test` (it is this suite; .ci/run runs it) and the Docker lines (no Docker
engine on these machines; tests/test_packaging.py checks the image runs `make run`'s command).
"""

import json
import os
import re
import subprocess

import pytest
import requests

from tests.support.servers import ROOT, free_port, serve
from tests.support.waiting import wait_until

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)


def block_with(marker: str) -> str:
    found = [b for b in BLOCKS if marker in b]
    assert len(found) == 1, f"one ```sh block with {marker!r} in README.md"
    return found[0]


WALK_THROUGH = block_with("to() {")
CALLING = block_with("# the RapidAPI package form")
CLI = block_with("blocks describe")
HOOKS = block_with("X-Hub-Signature-256")
EVENTS = block_with("/subscriptions -H")


def test_every_sh_block_is_run_or_named_as_not_run():
    run = {WALK_THROUGH, CALLING, CLI, HOOKS, EVENTS}
    not_run = [b for b in BLOCKS if b not in run]
    assert len(not_run) == 4
    assert "make run" in not_run[0] and "make test" in not_run[0]
    assert "docker build" in not_run[1]  # no Docker engine on these machines
    # Installing the n8n node from a packed tarball: tests/faces/test_n8n.py does the same in n8n.
    assert "npm pack" in not_run[2] and "N8N_CUSTOM_EXTENSIONS" in not_run[2]
    # Pushing to one's own Zapier account needs Zapier's cloud; tests/faces/test_zapier.py runs the
    # app in Zapier's CLI and runtime instead.
    assert "zapier-platform push" in not_run[3]


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    """`make run` itself, on a free port, with its data in a temporary directory."""
    env = {
        "INSTAMSG_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "WEB_CONCURRENCY": "1",
        "MCP_PORT": str(free_port()),
    }
    with serve(["make", "run"], env, timeout=60, drop=["INSTAMSG_SANDBOX"]) as (base, process):
        yield base, process.output, int(env["MCP_PORT"])


def test_make_run_starts_the_mcp_server_over_http_beside_gunicorn(make_run):
    _, output, mcp_port = make_run

    def healthy():
        try:
            return requests.get(f"http://127.0.0.1:{mcp_port}/healthz", timeout=5).ok
        except requests.ConnectionError:
            return False

    wait_until(healthy, 60, explain=lambda: output()[-2000:])


def bash(script: str, cwd, base: str, data=None, **more) -> subprocess.CompletedProcess:
    env = {**os.environ, "B": base, **more}
    if data is not None:
        env["INSTAMSG_DATA_DIR"] = str(data)
    env.pop("INSTAMSG_SANDBOX", None)
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def envelopes(text: str) -> list[dict]:
    """The JSON answers curl printed one after another (curl adds no newline)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(text, at)
        found.append(value)
    return found


def test_make_run_says_sandbox_mode_and_where_it_listens(make_run):
    base, output, _ = make_run
    assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
    log = output()
    assert "SANDBOX MODE" in log
    assert f"listening on http://127.0.0.1:{base.rsplit(':', 1)[1]}" in log


def test_the_walk_through_runs_as_written_and_again(make_run, tmp_path):
    base, _, _ = make_run
    for _ in range(2):  # fresh IDs each run: the second run works too
        done = bash(WALK_THROUGH, tmp_path, base)
        assert done.returncode == 0, done.stderr
        published, listed = envelopes(done.stdout)
        assert published["callback"] == "success"  # the README shows the first run's
        assert published["contextWrites"]["to"]["messageId"].isdigit()
        assert listed["callback"] == "success"
        assert [m["payload"] for m in listed["contextWrites"]["to"]] == ["21.5"]


def test_calling_a_block_runs_as_written(make_run, tmp_path):
    base, _, _ = make_run
    done = bash(WALK_THROUGH + CALLING, tmp_path, base)
    assert done.returncode == 0, done.stderr
    answers = envelopes(done.stdout)[2:]
    assert len(answers) == 4
    assert all(a["callback"] == "success" for a in answers), answers
    assert answers[0] == answers[1] == answers[2]  # the three body kinds: the same answer
    assert answers[3]["contextWrites"]["to"]["filename"] == "hello.txt"


def test_receiving_a_webhook_runs_as_written(make_run, tmp_path):
    base, _, _ = make_run
    done = bash(WALK_THROUGH + HOOKS, tmp_path, base)
    assert done.returncode == 0, done.stderr
    github, redelivered, standard = envelopes(done.stdout)[2:]
    assert github == redelivered and github["callback"] == standard["callback"] == "success"
    assert github["contextWrites"]["to"]["messageId"].isdigit()


def test_the_command_line_runs_as_written(tmp_path):
    done = bash(CLI, ROOT, "unused", data=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "createClient" in done.stdout and '"access_token"' in done.stdout


def test_instant_triggers_run_as_written(make_run, tmp_path):
    """make run's watcher delivers the message published after subscribing, signed with the
    secret the subscription answered, to a loopback catcher standing in for the flow."""
    from standardwebhooks import Webhook

    from tests.support.loopback import Loopback

    base, output, _ = make_run
    with Loopback() as catcher:
        catcher.post("/webhook/instamsg")
        done = bash(WALK_THROUGH + EVENTS, tmp_path, base, TARGET=catcher.url + "/webhook/instamsg")
        assert done.returncode == 0, done.stderr
        subscribed, published, log = envelopes(done.stdout)[2:]
        assert subscribed["secret"].startswith("whsec_")
        assert published["callback"] == "success"
        assert [(d["message"], d["state"]) for d in log] == [
            (published["contextWrites"]["to"]["messageId"], "delivered")
        ]
        (call,) = catcher.calls
        body = Webhook(subscribed["secret"]).verify(call.request.body, dict(call.request.headers))
        assert body["data"]["payload"] == "22.0" and body["subscription"] == subscribed["id"]
