"""`flask --app app blocks list | describe | call`: in process with Flask's CLI runner, and
as a user runs it, with the real `flask` command in a subprocess."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from connector import cli
from connector.config import Settings, with_sandbox_default
from connector.engine.registry import REGISTRY
from connector.generate import manifest
from tests.support.servers import ROOT, free_port
from tests.support.upstream import APP

#: The demo app as `blocks call` takes it: name=value words.
APP_WORDS = [f"{name}={value}" for name, value in APP.items()]
FLASK = str(Path(sys.executable).with_name("flask"))


@pytest.fixture
def sandbox_app(tmp_path):
    app = create_app(Settings(sandbox=True, data_dir=str(tmp_path)))
    app.cli.add_command(cli.blocks)
    return app


@pytest.fixture
def blocks(sandbox_app):
    """Runs `flask blocks ...` in process; a failure shows what the command printed."""
    runner = sandbox_app.test_cli_runner()

    def run(*args, exit_code=0, **kwargs):
        result = runner.invoke(args=["blocks", *args], **kwargs)
        assert result.exit_code == exit_code, (result.stdout, result.stderr, result.exception)
        return result

    return run


def envelope(result) -> dict:
    """The envelope a call printed: stdout holds it and nothing else."""
    return json.loads(result.stdout)


def result_of(result, key="to"):
    answer = envelope(result)
    assert answer["callback"] == "success", answer
    return answer["contextWrites"][key]


# -- sandbox mode by default, like `make run` ----------------------------------------------


@pytest.mark.parametrize(
    ("environ", "sandbox"),
    [
        ({"FLASK_RUN_FROM_CLI": "true"}, "1"),
        ({"FLASK_RUN_FROM_CLI": "true", "INSTAMSG_SANDBOX": "0"}, "0"),
        ({"FLASK_RUN_FROM_CLI": "true", "INSTAMSG_SANDBOX": ""}, ""),  # set, so kept
        ({}, None),  # gunicorn, the tests: their own default
    ],
)
def test_the_flask_command_defaults_to_the_sandbox(environ, sandbox):
    before = dict(environ)
    assert with_sandbox_default(environ).get("INSTAMSG_SANDBOX") == sandbox
    assert environ == before  # the process's environment is left as it was


# -- list and describe ---------------------------------------------------------------------


def test_list_names_every_block_with_its_first_sentence(blocks):
    lines = blocks("list").stdout.splitlines()
    entries = manifest.manifest()["blocks"]
    assert len(lines) == len(entries) == 30
    width = max(len(name) for name in REGISTRY.names())
    for line, entry in zip(lines, entries, strict=True):
        assert line[:width].rstrip() == entry["name"]
        sentence = line[width + 2 :]
        assert sentence[0] != " " and sentence.endswith(".")
        assert entry["description"].startswith(sentence)
    assert lines[0] == (
        "getAccessToken           "
        "Gets an OAuth2 access token for your InstaMsg app from its client key and secret."
    )


def test_list_json_is_the_manifests_block_list(blocks):
    assert json.loads(blocks("list", "--json").stdout) == manifest.manifest()["blocks"]


@pytest.mark.parametrize("name", REGISTRY.names())
def test_describe_shows_every_argument_of_every_block(blocks, name):
    text = blocks("describe", name).stdout
    entry = manifest.block_entry(REGISTRY.get(name))
    assert text.startswith(name + "\n")
    rows = [line.split() for line in text.splitlines() if line.startswith("  ") and line[2] != " "]
    assert [row[:3] for row in rows] == [
        [arg["name"], arg["type"], "required" if arg["required"] else "optional"]
        for arg in entry["args"]
    ]
    assert json.loads(blocks("describe", name, "--json").stdout) == entry


def test_describe_shows_options_and_the_info_under_each_argument(blocks):
    lines = blocks("describe", "publishMessage").stdout.splitlines()
    qos = next(i for i, line in enumerate(lines) if line.lstrip().startswith("qos "))
    assert lines[qos].split("  required  ")[1].startswith("options: 1, 2, 3")
    assert lines[qos + 1] == (
        "      Quality of service: 1 at most once, 2 at least once, 3 exactly once."
    )
    assert "\nArguments:\n" in "\n".join(lines)


def test_describe_states_the_rules_and_the_result(blocks):
    text = blocks("describe", "publishMessage").stdout
    assert "\nRules:\n    Give accessToken, or clientKey and clientSecret.\n" in text
    assert "\nAnswers (under contextWrites.to):\n    messageId  String  sample: " in text
    update = blocks("describe", "updateTenant").stdout
    assert "    Give at least one of: name, description, maxClients, maxMessages.\n" in update


def test_describe_accepts_the_instamsg_prefix(blocks):
    assert blocks("describe", "InstaMsg.getTenants").stdout.startswith("getTenants\n")


def test_describe_an_unknown_block_says_which_were_meant_and_exits_2(blocks):
    result = blocks("describe", "getTenant", exit_code=2)
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        "Error: There is no block named 'getTenant'. Did you mean: getTenants, deleteTenant, "
        "createTenant? `flask --app app blocks list` lists them all."
    )


def test_describe_shows_defaults_nested_structures_and_other_entries():
    entry = {
        "name": "demo",
        "description": "Does a thing. Then another.",
        "args": [
            {"name": "mode", "type": "Select", "info": "How.", "required": True,
             "options": ["a", "b"], "default": "a", "minimum": 0},
            {"name": "items", "type": "Array", "info": "What.", "required": False,
             "structure": [{"name": "lat", "type": "Number", "info": "Latitude."}]},
        ],
        "callbacks": [],
        "outputs": {"key": "to", "fields": [
            {"name": "id", "type": "String", "info": "The tenant's ID.", "sample": "t-1"}]},
        "atLeastOne": ["mode", "items"],
        "extra": {"x": 1},
    }  # fmt: skip
    assert cli.describe(entry) == (
        "demo\n"
        "Does a thing. Then another.\n"
        "\n"
        "Arguments:\n"
        "  mode   Select  required  options: a, b  default: a  minimum: 0\n"
        "      How.\n"
        "  items  Array   optional\n"
        "      What.\n"
        "      structure:\n"
        "        lat (Number): Latitude.\n"
        "\n"
        "Rules:\n"
        "    Give at least one of: mode, items.\n"
        "\n"
        "Answers (under contextWrites.to):\n"
        "    id  String  sample: t-1\n"
        "        The tenant's ID.\n"
        "\n"
        'extra: {"x": 1}'
    )


# -- call: usage errors, word for word -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["getTenants", "accessToken"],
            "'accessToken' is not KEY=VALUE: give each argument as name=value "
            "(name=@path reads a file).",
        ),
        (["getTenants", "=tok"], "'=tok' has no argument name before the '='."),
        (
            ["publishMessage", "payload=@{tmp}/missing.txt"],
            "payload=@{tmp}/missing.txt: cannot read '{tmp}/missing.txt': "
            "No such file or directory.",
        ),
        (
            ["publishMessage", "payload=@{tmp}"],
            "payload=@{tmp}: cannot read '{tmp}': Is a directory.",
        ),
        (
            ["publishMessage", "payload=@{tmp}/binary"],
            "payload=@{tmp}/binary: the file is not UTF-8 text. Only a File argument "
            "(uploadFile's file) is sent as bytes; give fileContent as base64.",
        ),
        (
            ["getTenants", "--json", "{nope"],
            "--json is not valid JSON: Expecting property name enclosed in double quotes "
            "(line 1, column 2).",
        ),
        (
            ["getTenants", "--json", '["accessToken"]'],
            '--json must be a JSON object of arguments, like \'{"name": "Farm"}\'.',
        ),
        (
            ["getTenants", "--json", "@{tmp}/missing.json"],
            "--json: cannot read '{tmp}/missing.json': No such file or directory.",
        ),
        (
            ["createTenant", "name=@-", "description=@-"],
            "Only one argument can read stdin (@-): name=@- already does, so description=@- "
            "cannot.",
        ),
    ],
)
def test_a_usage_error_says_what_is_wrong_and_exits_2(
    blocks, nothing_sent, tmp_path, args, message
):
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00payload")
    tmp = str(tmp_path)
    result = blocks(
        "call", *[arg.replace("{tmp}", tmp) for arg in args], input=b"Farm", exit_code=2
    )
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == "Error: " + message.replace("{tmp}", tmp)


# -- call: envelopes and exit statuses -----------------------------------------------------


def test_a_success_envelope_exits_0_and_is_all_of_stdout(blocks):
    result = blocks("call", "getAccessToken", *APP_WORDS)
    assert result.stdout.startswith('{\n  "callback": "success",\n')
    assert result_of(result)["token_type"] == "bearer"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["getTenants"], "REQUIRED_FIELDS", "Missing required arguments: accessToken."),
        (
            ["getAccessToken", "clientKey=demo-key", "clientSecret=wrong"],
            "API_ERROR",
            None,
        ),
        (
            ["getTenant", "accessToken=tok"],
            "UNKNOWN_BLOCK",
            "There is no block named 'getTenant'. Did you mean: getTenants, deleteTenant, "
            "createTenant? `flask --app app blocks list` lists them all.",
        ),
    ],
)
def test_an_error_envelope_is_printed_and_exits_1(blocks, args, code, message):
    result = blocks("call", *args, exit_code=1)
    answer = envelope(result)
    assert answer["callback"] == "error"
    assert answer["contextWrites"]["to"]["status_code"] == code
    if message is not None:
        assert answer["contextWrites"]["to"]["status_msg"] == message


def test_to_names_the_results_key(blocks):
    result = blocks("call", "getAccessToken", *APP_WORDS, "--to", "login")
    assert list(envelope(result)["contextWrites"]) == ["login"]
    assert result_of(result, "login")["access_token"]


# -- call: a whole sandbox flow ------------------------------------------------------------


def test_a_whole_flow_from_a_token_to_a_message_read_back(blocks, tmp_path):
    token = "accessToken=" + result_of(blocks("call", "getAccessToken", *APP_WORDS))["access_token"]
    quotas = tmp_path / "quotas.json"
    quotas.write_text('{"maxClients": 2, "maxMessages": 5}')
    tenant = result_of(blocks("call", "createTenant", token, "name=Farm", "--json", f"@{quotas}"))
    assert (tenant["max_clients"], tenant["max_messages"]) == (2, 5)
    tenant = tenant["id"]
    client = result_of(
        blocks(
            "call",
            "createClient",
            token,
            f"tenantId={tenant}",
            "type=device",
            "name=pump",
            "provisioningId=356938035643809",
            "pubTopics=telemetry",
            "pubTopics=alerts",  # a key given twice is a list
            "--json",
            '{"name": "from-json", "subTopics": ["commands"], "secureCertEnabled": false}',
        )
    )["id"]
    shown = result_of(
        blocks("call", "getSingleClient", token, f"tenantId={tenant}", f"clientId={client}")
    )
    assert shown["name"] == "pump"  # the KEY=VALUE pair wins over --json
    assert shown["pub_topics"] == ["telemetry", "alerts"]
    assert shown["sub_topics"] == ["commands"]

    payload = tmp_path / "reading.json"
    payload.write_text('{"celsius": 21.5}\n')
    ids = [token, f"tenantId={tenant}", f"clientId={client}"]
    published = blocks(
        "call",
        "publishMessage",
        *ids,
        "id=1",
        "type=pub",
        "topic=telemetry",
        "qos=1",
        f"payload=@{payload}",
    )
    assert result_of(published)["messageId"] == "1"
    messages = result_of(blocks("call", "getMessages", *ids, "start=2026-01-01"))
    assert [m["payload"] for m in messages] == ['{"celsius": 21.5}\n']  # the file, exactly


def test_a_file_argument_is_sent_as_the_file_and_comes_back_byte_for_byte(blocks, tmp_path):
    token = "accessToken=" + result_of(blocks("call", "getAccessToken", *APP_WORDS))["access_token"]
    tenant = result_of(
        blocks("call", "createTenant", token, "name=Files", "maxClients=1", "maxMessages=1")
    )["id"]
    client = result_of(
        blocks(
            "call",
            "createClient",
            token,
            f"tenantId={tenant}",
            "type=device",
            "name=cam",
            "provisioningId=cam-1",
        )
    )["id"]
    ids = [token, f"tenantId={tenant}", f"clientId={client}"]
    data = bytes(range(256)) * 40 + b"\xff\xfe"  # not UTF-8: it could only travel as a file
    photo = tmp_path / "photo.bin"
    photo.write_bytes(data)
    uploads = [
        (["filename=photo.bin", f"file=@{photo}"], None),
        (["filename=stdin.bin", "file=@-"], data),
        (["filename=b64.bin", f"fileContent=@{tmp_path / 'b64.txt'}"], None),
    ]
    (tmp_path / "b64.txt").write_text(base64.b64encode(data).decode())
    for args, stdin in uploads:
        blocks("call", "uploadFile", *ids, *args, input=stdin)
        name = args[0]
        downloaded = result_of(blocks("call", "downloadFile", *ids, name))
        assert base64.b64decode(downloaded["content"]) == data, name
    # With stream=1, the bytes themselves, and nothing else, on stdout.
    raw = blocks("call", "downloadFile", *ids, "filename=photo.bin", "stream=1")
    assert raw.stdout_bytes == data


# -- call: API keys ------------------------------------------------------------------------


@pytest.fixture
def locked(tmp_path):
    app = create_app(Settings(sandbox=True, data_dir=str(tmp_path), api_keys=("key-1",)))
    app.cli.add_command(cli.blocks)
    return app.test_cli_runner()


@pytest.mark.parametrize(
    ("options", "env", "exit_code"),
    [
        (["--api-key", "key-1"], {}, 0),
        ([], {"CONNECTOR_API_KEY": "key-1"}, 0),
        (["--api-key", "key-2"], {}, 1),
        ([], {}, 1),
    ],
)
def test_the_api_key_comes_from_the_option_or_the_environment(locked, options, env, exit_code):
    args = ["blocks", "call", "getAccessToken", *APP_WORDS, *options]
    result = locked.invoke(args=args, env={"CONNECTOR_API_KEY": None, **env})
    assert result.exit_code == exit_code, result.output
    code = next(iter(envelope(result)["contextWrites"].values())).get("status_code")
    assert code == (None if exit_code == 0 else "UNAUTHORIZED")
    if not options and not env:  # the refusal says how this face takes a key
        error = next(iter(envelope(result)["contextWrites"].values()))
        assert "--api-key (or CONNECTOR_API_KEY)" in error["status_msg"]


# -- the real `flask --app app` command ----------------------------------------------------


def flask(*args, env=None, tmp_path):
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "INSTAMSG_", "CONNECTOR_API_KEY"))
    }
    environ.update(INSTAMSG_DATA_DIR=str(tmp_path), **(env or {}))
    return subprocess.run(
        [FLASK, "--app", "app", "blocks", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_flask_blocks_call_runs_in_the_sandbox_by_default(tmp_path):
    args = ["call", "getAccessToken", *APP_WORDS]
    done = flask(*args, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)  # the log lines went to stderr
    assert answer["contextWrites"]["to"]["token_type"] == "bearer"
    assert "SANDBOX MODE" in done.stderr
    assert (tmp_path / "sandbox.sqlite3").exists()


@pytest.mark.slow
def test_flask_blocks_call_is_live_when_instamsg_sandbox_is_0(tmp_path):
    env = {
        "INSTAMSG_SANDBOX": "0",
        "INSTAMSG_API_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "INSTAMSG_RETRIES": "0",
    }
    done = flask("call", "getAccessToken", *APP_WORDS, env=env, tmp_path=tmp_path)
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)["contextWrites"]["to"]
    assert error["status_code"] == "UPSTREAM_UNAVAILABLE"
    assert "live mode" in done.stderr and "SANDBOX MODE" not in done.stderr


@pytest.mark.parametrize(
    ("args", "returncode", "stdout_lines", "stderr_last"),
    [
        (["list"], 0, 30, None),
        (["describe", "getTenants"], 0, None, None),
        (
            ["describe", "getTenant"],
            2,
            0,
            "Error: There is no block named 'getTenant'. Did you mean: getTenants, "
            "deleteTenant, createTenant? `flask --app app blocks list` lists them all.",
        ),
        (
            ["call", "getTenants", "accessToken"],
            2,
            0,
            "Error: 'accessToken' is not KEY=VALUE: give each argument as name=value "
            "(name=@path reads a file).",
        ),
        (["call", "getTenants"], 1, None, None),
    ],
)
@pytest.mark.slow
def test_flask_blocks_exit_statuses(tmp_path, args, returncode, stdout_lines, stderr_last):
    done = flask(*args, tmp_path=tmp_path)
    assert done.returncode == returncode, done.stderr
    if stdout_lines is not None:
        assert len(done.stdout.splitlines()) == stdout_lines
    if stderr_last is not None:
        assert done.stderr.splitlines()[-1] == stderr_last
