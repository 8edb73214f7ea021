"""The Zapier app in integrations/zapier/: generated from the manifest, fresh, and run for real.

The unit tests check the generator against the registry; the slow one installs the pinned
zapier-platform-core and CLI and runs `zapier-platform validate --without-style` and the app's
node tests (createAppTester) against the connector in sandbox mode, in a network namespace
with only loopback up.
"""

import copy
import json
import os
import re
import subprocess
import sys

import pytest

import blocks  # noqa: F401  (registers every block)
from connector.engine.registry import REGISTRY
from connector.generate import zapier
from tests.support.servers import ROOT

MANIFEST = json.loads((ROOT / "manifest.json").read_text())
ALL_BLOCKS = {b["name"]: b for b in MANIFEST["blocks"]}
# The app's operations: every block but the token ones (the connector manages tokens).
BLOCKS = {n: b for n, b in ALL_BLOCKS.items() if b["tag"] not in zapier.MANAGED_TAGS}
SIGN_IN = ("accessToken", "clientKey", "clientSecret")
APP_REGISTRY = [blk for blk in REGISTRY if blk.name in BLOCKS]
FILES = zapier.files(MANIFEST)


def generated(path: str) -> str:
    return FILES[path]


def definition(name: str) -> tuple[str, dict, dict]:
    return zapier.operation(BLOCKS[name], zapier.dropdowns(MANIFEST))


def test_the_committed_app_is_fresh():
    changed, extra = zapier.stale(zapier.APP_DIR, FILES)
    assert (changed, extra) == ([], []), "stale: run `make integrations`"


def test_generation_is_deterministic_and_independent_of_block_order():
    shuffled = copy.deepcopy(MANIFEST)
    shuffled["blocks"].reverse()
    assert zapier.files(shuffled) == zapier.files(copy.deepcopy(MANIFEST)) == FILES


def test_every_block_is_exactly_one_operation_of_index_js():
    index = generated("index.js")
    for name in BLOCKS:
        kind = zapier.kind_of(BLOCKS[name])
        assert f"{kind}/{name}.js" in FILES
        assert index.count(f"require('./{kind}/{name}')") == 1
    # One more per event, of no block: the REST-hook triggers (a subscription, not a block call).
    operations = [p for p in FILES if p.split("/")[0] in zapier.KINDS]
    hooks = [f"triggers/{key}.js" for key in zapier.HOOK_KEYS]
    assert set(hooks) <= set(operations) and zapier.HOOK_KEY == "messageReceived"
    assert len(operations) - len(hooks) == len(BLOCKS) == len(REGISTRY) - 2
    # The token blocks are the connector's business: no operation of the app.
    assert not any("AccessToken" in path for path in operations)


@pytest.mark.parametrize("blk", APP_REGISTRY, ids=lambda b: b.name)
def test_reads_are_exactly_the_get_blocks_and_lists_are_triggers(blk):
    kind = zapier.kind_of(BLOCKS[blk.name])
    many = BLOCKS[blk.name]["outputs"]["type"] == "list"
    if blk.method == "GET":
        assert kind == ("triggers" if many else "searches")
    else:
        assert kind == "creates"


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_argument_is_a_typed_input_field_but_the_sign_in_ones(name):
    block = BLOCKS[name]
    _, spec, meta = definition(name)
    fields = {f["key"]: f for f in spec["operation"]["inputFields"]}
    args = [a for a in block["args"] if a["name"] not in SIGN_IN]
    fields.pop(zapier.KEY_FIELD["key"], None)  # a create's Idempotency Key: no argument
    assert list(fields) == [a["name"] for a in args] == meta["args"]
    for arg in args:
        field = fields[arg["name"]]
        assert field["type"] == zapier.INPUT_TYPES[arg["type"]][0]
        chosen = (name, arg["name"]) in zapier.APP_CHOSEN
        assert field["required"] is (bool(arg["required"]) and not chosen)
        assert field.get("list", False) is (arg["type"] == "List")
        values = [str(o) for o in arg["options"]] if "options" in arg else None
        assert ([c["value"] for c in field.get("choices", [])] or None) == values
        if "default" in arg:
            assert field["default"] == json.dumps(arg["default"]).strip('"')


@pytest.mark.parametrize("blk", APP_REGISTRY, ids=lambda b: b.name)
def test_every_keyed_block_and_only_those_take_an_optional_idempotency_key_last(blk):
    kind, spec, meta = definition(blk.name)
    fields = spec["operation"]["inputFields"]
    keyed = [f for f in fields if f["key"] == "idempotencyKey"]
    assert (kind == "creates") is (blk.method != "GET")
    # Every create but getAccessToken, whose kept answer would be an expired token.
    assert blk.keyed is bool(keyed) is meta.get("keyed", False)
    if keyed:
        assert fields[-1] == zapier.KEY_FIELD and fields[-1]["required"] is False
        assert "idempotencyKey" not in meta["args"]  # a header, never an argument
        assert "Idempotency-Key header" in fields[-1]["helpText"]


def test_field_types_cover_each_kind_of_argument():
    fields = {
        f"{name}.{f['key']}": f
        for name in BLOCKS
        for f in definition(name)[1]["operation"]["inputFields"]
    }
    assert fields["getMessages.start"]["type"] == "datetime"
    assert fields["publishMessage.save"] == fields["publishMessage.save"] | {
        "type": "boolean",
        "default": "true",
    }
    assert fields["publishMessage.qos"]["choices"] == [
        {"value": "1", "sample": "1", "label": "At most once (1)"},
        {"value": "2", "sample": "2", "label": "At least once (2)"},
        {"value": "3", "sample": "3", "label": "Exactly once (3)"},
    ]
    assert [c["label"] for c in fields["publishMessage.type"]["choices"]] == [
        "Publish on a topic (pub)",
        "Send to one client (peer to peer) (p2p)",
    ]
    assert fields["createClient.pubTopics"]["list"] is True
    assert fields["updateClientConfig.config"]["type"] == "text"
    assert fields["uploadFile.file"]["type"] == "file"
    assert fields["createClient.gsmPassword"]["type"] == "password"
    # Sign-in lives in the connection only.
    assert not [key for key in fields if key.split(".")[1] in SIGN_IN]
    # publishMessage's id: nobody has to invent it.
    assert fields["publishMessage.id"]["required"] is False
    assert "Left empty, the app picks one" in fields["publishMessage.id"]["helpText"]
    assert definition("publishMessage")[2]["chosen"] == ["id"]


def test_id_fields_draw_their_dropdowns_from_list_triggers_that_exist():
    lists = zapier.dropdowns(MANIFEST)
    assert lists == {"tenantId": ("getTenants", []), "clientId": ("getClients", ["tenantId"])}
    seen = 0
    for name in BLOCKS:
        fields = definition(name)[1]["operation"]["inputFields"]
        keys = [f["key"] for f in fields]
        for field in fields:
            if "dynamic" not in field:
                assert field["key"] not in lists or lists[field["key"]][0] == name
                assert not (BLOCKS[name]["tag"] == "tenants" and field["key"] == "id")
                continue
            seen += 1
            trigger, value, label = field["dynamic"].split(".")
            assert zapier.kind_of(BLOCKS[trigger]) == "triggers" and trigger != name
            outputs = {f["name"] for f in BLOCKS[trigger]["outputs"]["fields"]}
            assert {value, label} <= outputs
            # What the dropdown's trigger needs is filled in before, in the same form.
            for need in field.get("dependsOn", []):
                assert keys.index(need) < keys.index(field["key"])
    assert seen > 40


def test_an_argument_type_without_a_zapier_field_is_refused():
    with pytest.raises(ValueError, match="Polygon"):
        zapier.input_field({"name": "area", "type": "Polygon", "required": False})


def test_every_operation_sends_the_connections_key_and_secret():
    credentials = {name: definition(name)[2]["credentials"] for name in BLOCKS}
    assert set(credentials.values()) == {"managed"}
    # The connection's test still runs getAccessToken, which always takes them.
    assert zapier.credentials_of(ALL_BLOCKS["getAccessToken"]) == "always"


def test_a_file_field_is_sent_as_bytes_in_its_text_alternative():
    assert definition("uploadFile")[2]["files"] == {"file": "fileContent"}
    assert all("files" not in definition(n)[2] for n in BLOCKS if n != "uploadFile")


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_outputs_and_sample_come_from_the_recorded_sample(name):
    kind, spec, meta = definition(name)
    outputs = BLOCKS[name]["outputs"]
    keys = [f["key"] for f in spec["operation"]["outputFields"]]
    names = [f["name"] for f in outputs["fields"]]
    derived = kind == "triggers" and "id" not in names
    assert keys == (["id"] if derived else []) + names
    sample = outputs["sample"][0] if kind == "triggers" else outputs["sample"]
    assert spec["operation"]["sample"] == sample
    if kind == "triggers":
        assert meta["fields"] == names
        assert meta["time"] in names


def test_labels_and_nouns():
    assert definition("getClientNetworkLogs")[1]["display"]["label"] == "New Client Network Log"
    assert definition("getSingleTenant")[1]["noun"] == "Tenant"
    assert definition("getSingleTenant")[1]["display"]["label"] == "Get Single Tenant"
    assert definition("publishMessage")[1]["noun"] == "Message"
    assert zapier.display_name("tenantId") == "Tenant ID"


def test_the_connection_has_the_four_fields_and_tests_with_get_access_token():
    text = generated("authentication.js")
    keys = re.findall(r'"key": "(\w+)"', text)
    assert keys == ["baseUrl", "apiKey", "clientKey", "clientSecret"]
    assert '"block": "getAccessToken"' in text and '"secret": "access_token"' in text


def test_the_runtime_is_copied_as_it_is():
    assert generated("lib/runtime.js").endswith(zapier.RUNTIME.read_text())


def test_the_platform_is_pinned_exactly_and_the_lock_agrees():
    package = json.loads(generated("package.json"))
    assert package["dependencies"] == {"zapier-platform-core": zapier.PLATFORM_VERSION}
    assert package["devDependencies"] == {"zapier-platform-cli": zapier.PLATFORM_VERSION}
    lock = json.loads((zapier.APP_DIR / "package-lock.json").read_text())
    for name in ("zapier-platform-core", "zapier-platform-cli"):
        assert lock["packages"][f"node_modules/{name}"]["version"] == zapier.PLATFORM_VERSION


def test_stale_names_changed_missing_and_leftover_files(tmp_path):
    for path, text in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert zapier.stale(tmp_path, FILES) == ([], [])
    (tmp_path / "index.js").write_text("// edited by hand\n")
    (tmp_path / "creates" / "publishMessage.js").unlink()
    (tmp_path / "triggers" / "getOldThings.js").write_text("module.exports = {};\n")
    (tmp_path / "test" / "app.test.js").parent.mkdir()
    (tmp_path / "test" / "app.test.js").write_text("// hand-written, not generated\n")
    assert zapier.stale(tmp_path, FILES) == (
        ["creates/publishMessage.js", "index.js"],
        ["triggers/getOldThings.js"],
    )


def test_check_command_passes_on_the_committed_app():
    done = subprocess.run(
        [sys.executable, "-m", "connector.generate.zapier", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


@pytest.mark.slow
def test_the_real_zapier_cli_validates_and_createapptester_runs_every_operation():
    node_bin = subprocess.run(
        ["bash", ".ci/zapier"], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert node_bin.returncode == 0, node_bin.stderr[-3000:]
    done = subprocess.run(
        [
            "unshare",
            "-n",
            "sh",
            "-c",
            'ip link set lo up && exec "$@"',
            "sh",
            sys.executable,
            "-m",
            "tests.support.zapier_run",
            node_bin.stdout.strip(),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    assert "CLI version: 19." in output and "This project is structurally sound!" in output
    node_tests = (zapier.APP_DIR / "test" / "app.test.js").read_text()
    expected = len(re.findall(r"^test\(", node_tests, re.M))
    assert re.search(rf"^# pass {expected}$", output, re.M), output[-4000:]
    assert re.search(r"^# fail 0$", output, re.M)
    # The REST-hook trigger's delivery, checked in Python with the standardwebhooks library.
    assert "delivery verified with standardwebhooks" in output, output[-4000:]


@pytest.mark.slow
def test_the_real_zapier_cli_refuses_a_broken_app(tmp_path):
    """The validate step has teeth: the same app with one operation key Zapier forbids."""
    node_bin = subprocess.run(
        ["bash", ".ci/zapier"], cwd=ROOT, capture_output=True, text=True, timeout=900
    ).stdout.strip()
    for path, text in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text.replace('"key": "getFiles"', '"key": "get-files"'))
    (tmp_path / "node_modules").symlink_to(zapier.APP_DIR / "node_modules")
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
        + [str(tmp_path / "node_modules" / ".bin" / "zapier-platform"), "validate"]
        + ["--without-style"],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{node_bin}:{os.environ['PATH']}"}
        | {"DISABLE_ZAPIER_ANALYTICS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "structurally invalid" in done.stdout and "get-files" in done.stdout


def test_the_zapier_app_and_the_n8n_node_label_every_argument_alike():
    """One display-name rule for both packages: "GSM SIM PIN" in each, never "Gsm Sim Pin"."""
    from connector.generate import n8n

    compared = 0
    for block in MANIFEST["blocks"]:
        _, definition, _ = zapier.operation(block)
        for field in definition["operation"]["inputFields"]:
            arg = next((a for a in block["args"] if a["name"] == field["key"]), None)
            if arg is None:
                continue
            shown = n8n.parameter(arg, in_collection=False)["displayName"]
            assert field["label"] == shown.removesuffix(" (Input Binary Field)"), field["key"]
            compared += 1
    assert compared > 100
    assert zapier.display_name("gsmSimPin") == "GSM SIM PIN"


@pytest.mark.parametrize("block", MANIFEST["blocks"], ids=lambda b: b["name"])
def test_reads_and_writes_come_from_the_manifest(block):
    kind = zapier.kind_of(block)
    assert (kind in ("triggers", "searches")) == block["readOnly"], block["name"]
    assert block["readOnly"] == REGISTRY.get(block["name"]).read_only
