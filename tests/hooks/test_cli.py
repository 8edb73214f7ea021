"""``flask --app app hooks add|list|show|remove``: the same hooks as /hooks, in the same store."""

import json

import pytest

from tests.support.upstream import TOKEN


@pytest.fixture
def run(app):
    runner = app.test_cli_runner()

    def invoke(*args):
        result = runner.invoke(args=["hooks", *args])
        return result.exit_code, json.loads(result.output)

    return invoke


def test_a_hook_made_from_the_command_line_is_served_over_http(run, client):
    code, made = run(
        "add",
        "publishMessage",
        "--scheme", "hmac",
        "--option", "header=X-Signature",
        "--option", "encoding=base64",
        "--arg", f"accessToken={TOKEN}",
        "--map", "payload=body.text",
    )  # fmt: skip
    assert code == 0 and made["verify"] == {
        "scheme": "hmac",
        "header": "X-Signature",
        "algorithm": "sha256",
        "encoding": "base64",
        "prefix": "",
    }
    assert made["secret"] and made["args"]["accessToken"] == "[redacted]"
    assert [hook["id"] for hook in client.get("/hooks").json] == [made["id"]]
    code, shown = run("show", made["id"])
    assert code == 0 and made["secret"] not in json.dumps(shown) and TOKEN not in json.dumps(shown)
    assert run("list")[1] == [shown]
    assert run("remove", made["id"]) == (0, {"id": made["id"], "removed": True})
    assert client.get("/hooks").json == []


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (
            ("add", "publishMessage", "--scheme", "github", "--map", "payload=body.["),
            "INVALID_FIELDS",
        ),
        (("add", "nope", "--scheme", "github"), "UNKNOWN_BLOCK"),
        (("show", "h" + "0" * 20), "HOOK_NOT_FOUND"),
        (("remove", "nothing"), "HOOK_NOT_FOUND"),
    ],
)
def test_a_refusal_prints_its_error_and_exits_1(run, args, code):
    exit_code, error = run(*args)
    assert (exit_code, error["status_code"]) == (1, code)
