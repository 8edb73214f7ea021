"""The n8n package's generator (connector/generate/n8n.py): fresh, and a faithful map of the
manifest.

The package itself runs in the real n8n in tests/faces/test_n8n.py (slow)."""

import copy
import json

import pytest

import blocks  # noqa: F401  (registers every block)
from connector.engine.registry import REGISTRY
from connector.generate import n8n

MANIFEST = n8n.load_manifest()
BLOCKS = {block["name"]: block for block in MANIFEST["blocks"]}
FILES = n8n.files(MANIFEST)
NODE = json.loads(FILES["nodes/InstaMsg/InstaMsg.description.json"])
PROPERTIES = NODE["properties"]

N8N_TYPE = {
    "String": "string",
    "credentials": "string",
    "Number": "number",
    "Boolean": "boolean",
    "Datepicker": "dateTime",
    "List": "string",
    "JSON": "json",
    "Array": "json",
    "Map": "json",
    "File": "string",
}


def shown_for(operation):
    """The parameters n8n shows for one operation: its own, and its collection's options."""
    own, collected = {}, {}
    for prop in PROPERTIES:
        if prop.get("displayOptions", {}).get("show", {}).get("operation") != [operation]:
            continue
        if prop["type"] == "collection":
            collected.update({option["name"]: option for option in prop["options"]})
        else:
            own[prop["name"]] = prop
    return own, collected


def test_the_committed_package_is_fresh():
    assert n8n.stale() == [], "run: make integrations"


def test_the_stale_check_names_a_changed_file_and_an_extra_one(tmp_path):
    n8n.write(tmp_path, MANIFEST)
    assert n8n.stale(tmp_path, MANIFEST) == []
    (tmp_path / "package.json").write_text("{}")
    (tmp_path / "nodes" / "Old.node.js").write_text("")
    assert n8n.stale(tmp_path, MANIFEST) == ["nodes/Old.node.js", "package.json"]
    n8n.write(tmp_path, MANIFEST)
    assert n8n.stale(tmp_path, MANIFEST) == []


def test_the_output_is_deterministic():
    assert n8n.files(copy.deepcopy(MANIFEST)) == FILES
    assert list(FILES) == sorted(FILES)


def test_package_json_lists_what_n8n_loads():
    package = json.loads(FILES["package.json"])
    assert package["name"] == "n8n-nodes-instamsg"
    assert package["version"] == MANIFEST["version"]
    assert "n8n-community-node-package" in package["keywords"]
    listed = package["n8n"]["nodes"] + package["n8n"]["credentials"]
    assert listed == [
        "nodes/InstaMsg/InstaMsg.node.js",
        "nodes/InstaMsgTrigger/InstaMsgTrigger.node.js",
        "credentials/InstaMsgApi.credentials.js",
    ]
    # n8n finds a node by its file name: X.node.js exporting class X.
    for path in listed:
        name = path.rsplit("/", 1)[1].split(".")[0]
        assert f"module.exports = {{ {name} }};" in FILES[path]


def test_resources_are_the_tags_and_operations_the_blocks():
    resources = next(p for p in PROPERTIES if p["name"] == "resource")
    tags = [option["value"] for option in resources["options"]]
    assert set(tags) == {block["tag"] for block in MANIFEST["blocks"]}
    operations = {}
    for prop in PROPERTIES:
        if prop["name"] == "operation":
            (tag,) = prop["displayOptions"]["show"]["resource"]
            operations[tag] = [option["value"] for option in prop["options"]]
    assert operations == {
        tag: sorted(b["name"] for b in MANIFEST["blocks"] if b["tag"] == tag) for tag in tags
    }
    assert set(NODE["operations"]) == set(BLOCKS)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_argument_is_a_parameter_of_its_name_shown_for_its_operation_only(name):
    block = BLOCKS[name]
    own, collected = shown_for(name)
    assert set(own) | set(collected) == {arg["name"] for arg in block["args"]}
    assert not set(own) & set(collected)
    spec = NODE["operations"][name]
    assert set(spec["arguments"]) == set(own) and set(spec["collected"]) == set(collected)
    for arg in block["args"]:
        param = own.get(arg["name"]) or collected[arg["name"]]
        assert param["description"].startswith(arg["info"]) or arg["info"] in param["description"]
        expected = "options" if "options" in arg else N8N_TYPE[arg["type"]]
        assert param["type"] == expected, arg
        if arg["name"] in ("clientKey", "clientSecret", "accessToken"):
            # The credentials stand in for these: never a required parameter of their own.
            assert arg["name"] in collected
        elif arg.get("required"):
            assert own[arg["name"]].get("required") is True
        if arg["name"] in collected:
            assert "required" not in param


@pytest.mark.parametrize(
    "name, arg",
    [(b["name"], a) for b in MANIFEST["blocks"] for a in b["args"]],
    ids=lambda value: value if isinstance(value, str) else value["name"],
)
def test_each_parameter_is_typed_from_the_manifest(name, arg):
    own, collected = shown_for(name)
    param = own.get(arg["name"]) or collected[arg["name"]]
    if "options" in arg:
        assert [o["value"] for o in param["options"]] == arg["options"]
        assert param["default"] == arg.get("default", arg["options"][0])
    elif arg["type"] == "Boolean":
        # n8n booleans always hold a value: it starts at the manifest's default.
        assert param["default"] is arg.get("default", False)
    elif arg["type"] == "Number":
        limits = param.get("typeOptions", {})
        assert limits.get("minValue") == arg.get("minimum")
        assert limits.get("maxValue") == arg.get("maximum")
    elif arg["type"] == "List":
        assert param["typeOptions"]["multipleValues"] is True and param["default"] == []
    elif arg["type"] == "credentials":
        assert param["typeOptions"] == {"password": True}
    elif arg["type"] == "File":
        assert param["default"] == "data"
        assert NODE["operations"][name]["arguments"][arg["name"]] == "file"
    else:
        assert param["default"] == arg.get("default", "")


def test_optional_arguments_wait_in_a_collection_so_that_only_added_ones_are_sent():
    own, collected = shown_for("publishMessage")
    assert {"tenantId", "clientId", "id", "type", "topic", "payload", "qos"} == set(own)
    assert {"save", "duplicate"} <= set(collected)
    assert collected["save"]["default"] is True and collected["duplicate"]["default"] is False
    assert NODE["operations"]["publishMessage"]["collection"] == "additionalFields"
    assert NODE["operations"]["updateTenant"]["collection"] == "updateFields"


def test_upload_takes_binary_data_or_base64_and_download_gives_binary_data():
    upload = NODE["operations"]["uploadFile"]
    assert upload["arguments"]["file"] == "file"
    assert upload["fileAlternatives"] == {"file": ["fileContent"]}
    assert NODE["operations"]["downloadFile"]["binaryOutput"] == "data"
    assert [n for n, spec in NODE["operations"].items() if "binaryOutput" in spec] == [
        "downloadFile"
    ]


def test_the_credentials_hold_the_connector_and_the_app():
    fields = json.loads(FILES["credentials/InstaMsgApi.description.json"])
    assert [f["name"] for f in fields] == ["baseUrl", "apiKey", "clientKey", "clientSecret"]
    secret = {f["name"] for f in fields if f.get("typeOptions", {}).get("password")}
    assert secret == {"apiKey", "clientSecret"}


def test_the_trigger_watches_a_client_with_getmessages_own_parameters():
    trigger = json.loads(FILES["nodes/InstaMsgTrigger/InstaMsgTrigger.description.json"])
    assert trigger["block"] == "getMessages"
    assert [p["name"] for p in trigger["properties"]] == ["tenantId", "clientId", "topic"]
    tenant = next(a for a in BLOCKS["getMessages"]["args"] if a["name"] == "tenantId")
    assert trigger["properties"][0]["description"] == tenant["info"]


def test_a_manifest_of_other_blocks_makes_other_parameters():
    """The generator reads only the manifest it is given: types the blocks do not use yet map
    too, and an update block's optional arguments become its update fields."""
    manifest = copy.deepcopy(MANIFEST)
    manifest["blocks"].append(
        {
            "name": "moveDevice",
            "description": "Moves a device.",
            "tag": "clients",
            "args": [
                {"name": "where", "type": "Map", "info": "Where to.", "required": True},
                {"name": "stops", "type": "Array", "info": "Stops.", "required": False},
                {"name": "note", "type": "String", "info": "A note.", "required": False},
            ],
            "atLeastOne": ["stops", "note"],
            "idempotencyKey": True,
            "outputs": {"key": "to", "type": "object", "fields": []},
        }
    )
    node = json.loads(n8n.files(manifest)["nodes/InstaMsg/InstaMsg.description.json"])
    assert node["operations"]["moveDevice"] == {
        "arguments": {"where": "json"},
        "collection": "updateFields",
        "collected": {"stops": "json", "note": "string"},
        "appCredentials": False,
        "keyed": True,
    }
    operations = next(
        p
        for p in node["properties"]
        if p["name"] == "operation" and p["displayOptions"]["show"]["resource"] == ["clients"]
    )
    assert "moveDevice" in [option["value"] for option in operations["options"]]


@pytest.mark.parametrize(
    "name, shown",
    [("tenantId", "Tenant ID"), ("gsmSimPin", "GSM SIM PIN"), ("qos", "QoS"), ("to", "To")],
)
def test_display_names(name, shown):
    assert n8n.display_name(name) == shown


def test_the_manifest_says_which_blocks_take_a_key_as_the_registry_does():
    assert {name for name, b in BLOCKS.items() if b["idempotencyKey"]} == {
        blk.name for blk in REGISTRY if blk.keyed
    }


def test_every_operation_that_changes_something_takes_an_idempotency_key_and_no_read_does():
    (key,) = [prop for prop in PROPERTIES if prop["name"] == n8n.KEY_PARAMETER]
    # The blocks the registry says take a key (not the reads, not getAccessToken).
    changing = sorted(name for name, block in BLOCKS.items() if REGISTRY.get(name).keyed)
    assert sorted(key["displayOptions"]["show"]["operation"]) == changing
    assert "getMessages" not in changing and "publishMessage" in changing
    assert "getAccessToken" not in changing
    assert key["type"] == "string" and key["default"] == "" and "required" not in key
    assert "$execution.id" in key["description"] and "$itemIndex" in key["description"]
    for name, spec in NODE["operations"].items():
        assert spec["keyed"] is (name in changing)
    # No block argument is named as the key's parameter.
    assert not any(a["name"] == n8n.KEY_PARAMETER for b in BLOCKS.values() for a in b["args"])
