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
ALL_BLOCKS = {block["name"]: block for block in MANIFEST["blocks"]}
# The node's operations: every block but the token ones (the connector manages tokens).
BLOCKS = {name: b for name, b in ALL_BLOCKS.items() if b["tag"] not in n8n.MANAGED_TAGS}
SIGN_IN = {"accessToken", "clientKey", "clientSecret"}
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
        elif prop["name"] not in ("returnAll", "limit"):
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
        "nodes/InstaMsgInstantTrigger/InstaMsgInstantTrigger.node.js",
        "credentials/InstaMsgApi.credentials.js",
    ]
    # n8n finds a node by its file name: X.node.js exporting class X.
    for path in listed:
        name = path.rsplit("/", 1)[1].split(".")[0]
        assert f"module.exports = {{ {name} }};" in FILES[path]


def test_resources_are_the_tags_and_operations_the_blocks():
    resources = next(p for p in PROPERTIES if p["name"] == "resource")
    tags = [option["value"] for option in resources["options"]]
    assert set(tags) == {block["tag"] for block in BLOCKS.values()}
    operations = {}
    for prop in PROPERTIES:
        if prop["name"] == "operation":
            (tag,) = prop["displayOptions"]["show"]["resource"]
            operations[tag] = [option["value"] for option in prop["options"]]
    assert {tag: sorted(names) for tag, names in operations.items()} == {
        tag: sorted(b["name"] for b in BLOCKS.values() if b["tag"] == tag) for tag in tags
    }
    assert set(NODE["operations"]) == set(BLOCKS)
    assert "token" not in tags and {"getAccessToken", "invalidateAccessToken"} <= set(ALL_BLOCKS)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_argument_is_a_parameter_of_its_name_shown_for_its_operation_only(name):
    block = BLOCKS[name]
    own, collected = shown_for(name)
    assert set(own) | set(collected) == {a["name"] for a in block["args"]} - SIGN_IN
    assert not set(own) & set(collected)
    spec = NODE["operations"][name]
    assert set(spec["arguments"]) == set(own) and set(spec["collected"]) == set(collected)
    for arg in block["args"]:
        if arg["name"] in SIGN_IN:
            continue
        param = own.get(arg["name"]) or collected[arg["name"]]
        assert param["description"].startswith(arg["info"]) or arg["info"] in param["description"]
        if n8n.located(block, arg).get("locator"):
            expected = "resourceLocator"
        else:
            expected = "options" if "options" in arg else N8N_TYPE[arg["type"]]
        assert param["type"] == expected, arg
        if (name, arg["name"]) in n8n.NODE_CHOSEN:
            # Required, but the node fills it when left out: it waits in the collection.
            assert arg.get("required") and arg["name"] in collected
            assert spec["chosen"] == [arg["name"]]
        elif arg.get("required"):
            assert own[arg["name"]].get("required") is True
        if arg["name"] in collected:
            assert "required" not in param


@pytest.mark.parametrize(
    "name, arg",
    [(b["name"], a) for b in BLOCKS.values() for a in b["args"] if a["name"] not in SIGN_IN],
    ids=lambda value: value if isinstance(value, str) else value["name"],
)
def test_each_parameter_is_typed_from_the_manifest(name, arg):
    own, collected = shown_for(name)
    param = own.get(arg["name"]) or collected[arg["name"]]
    method = n8n.located(BLOCKS[name], arg).get("locator")
    if method:
        # Picked From List (searchable) or typed By ID; the runtime sends the ID either way.
        assert param["default"] == {"mode": "list", "value": ""}
        assert [m["name"] for m in param["modes"]] == ["list", "id"]
        assert param["modes"][0]["typeOptions"] == {"searchListMethod": method, "searchable": True}
        assert NODE["operations"][name]["arguments"][arg["name"]] == "locator"
    elif "options" in arg:
        assert [o["value"] for o in param["options"]] == arg["options"]
        assert param["default"] == arg.get("default", arg["options"][0])
    elif arg["type"] == "Boolean":
        # n8n booleans always hold a value: it starts at the manifest's default.
        assert param["default"] is arg.get("default", False)
    elif arg["type"] == "Number":
        limits = param.get("typeOptions", {})
        assert limits.get("minValue") == arg.get("minimum")
        assert limits.get("maxValue") == arg.get("maximum")
        if arg.get("required") and "default" not in arg:
            # The form as it comes makes a valid call: a required number starts at its example.
            assert param["default"] == arg["example"]
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
    assert {"tenantId", "clientId", "type", "topic", "payload", "qos"} == set(own)
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


def test_the_credentials_hold_the_connector_and_the_app_and_require_what_a_call_needs():
    credential = json.loads(FILES["credentials/InstaMsgApi.description.json"])
    fields = credential["properties"]
    assert [f["name"] for f in fields] == ["baseUrl", "apiKey", "clientKey", "clientSecret"]
    secret = {f["name"] for f in fields if f.get("typeOptions", {}).get("password")}
    assert secret == {"apiKey", "clientSecret"}
    # Every operation needs the URL and the app; the API key only where the connector sets one.
    required = {f["name"] for f in fields if f.get("required")}
    assert required == {"baseUrl", "clientKey", "clientSecret"}
    # Its test is a real call with them, and the Docs link is the connector's own.
    assert credential["testBlock"] == "getAccessToken"
    assert credential["documentationUrl"] == n8n.CREDENTIAL_DOCS_URL
    script = FILES["credentials/InstaMsgApi.credentials.js"]
    assert "this.icon = 'file:instamsg.svg'" in script
    assert FILES["credentials/instamsg.svg"] == FILES["nodes/InstaMsg/instamsg.svg"]


def test_no_operation_has_a_sign_in_field():
    names = set()
    for prop in PROPERTIES:
        names.add(prop["name"])
        names.update(option["name"] for option in prop.get("options") or [] if "type" in option)
    assert not names & SIGN_IN
    # The credential's app goes with every call that takes one.
    for name, spec in NODE["operations"].items():
        takes = {a["name"] for a in BLOCKS[name]["args"]}
        assert spec["appCredentials"] is ("clientKey" in takes)


def test_the_trigger_watches_a_client_with_getmessages_own_parameters():
    trigger = json.loads(FILES["nodes/InstaMsgTrigger/InstaMsgTrigger.description.json"])
    assert trigger["block"] == "getMessages"
    names = [p["name"] for p in trigger["properties"]]
    assert names == ["event", "tenantId", "clientId", "topic"]
    tenant = next(a for a in BLOCKS["getMessages"]["args"] if a["name"] == "tenantId")
    assert trigger["properties"][1]["description"] == tenant["info"]
    # n8n's node panel names a trigger's actions after its Event options.
    (event,) = trigger["properties"][0]["options"]
    assert event["action"] == "On new message"


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
        "label": "Move Device",
        "list": False,
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
    assert {name for name, b in ALL_BLOCKS.items() if b["idempotencyKey"]} == {
        blk.name for blk in REGISTRY if blk.keyed
    }


def test_every_operation_that_changes_something_takes_an_idempotency_key_and_no_read_does():
    (options,) = [prop for prop in PROPERTIES if prop["name"] == n8n.OPTIONS]
    (key,) = options["options"]
    assert options["type"] == "collection" and key["name"] == n8n.KEY_PARAMETER
    # The blocks the registry says take a key (not the reads).
    changing = sorted(name for name, block in BLOCKS.items() if REGISTRY.get(name).keyed)
    assert sorted(options["displayOptions"]["show"]["operation"]) == changing
    assert "getMessages" not in changing and "publishMessage" in changing
    assert key["type"] == "string" and key["default"] == "" and "required" not in key
    # Left out, the node sends a key of its own (lib/instamsg.js, idempotencyKey).
    assert "Left out, the node sends a key of its own" in key["description"]
    for name, spec in NODE["operations"].items():
        assert spec["keyed"] is (name in changing)
    # No block argument is named as the key's parameter.
    assert not any(a["name"] == n8n.KEY_PARAMETER for b in BLOCKS.values() for a in b["args"])


@pytest.mark.parametrize(
    "block, name, action",
    [
        ("getTenants", "Get Many Tenants", "Get many tenants"),
        ("getSingleTenant", "Get Tenant", "Get a tenant"),
        ("createTenant", "Create Tenant", "Create a tenant"),
        ("updateClient", "Update Client", "Update a client"),
        ("getClientNetworkLogs", "Get Many Client Network Logs", "Get many client network logs"),
        ("publishMessage", "Publish Message", "Publish a message"),
        ("getClientInfo", "Get Client Info", "Get client info"),
    ],
)
def test_operations_are_named_as_n8n_names_its_own(block, name, action):
    assert n8n.operation_names(BLOCKS[block]) == (name, action)
    (option,) = [
        o
        for p in PROPERTIES
        if p["name"] == "operation"
        for o in p["options"]
        if o["value"] == block
    ]
    assert (option["name"], option["action"]) == (name, action)
    assert NODE["operations"][block]["label"] == name


def test_the_subtitle_shows_the_action_not_the_block_name():
    assert (
        NODE["subtitle"].startswith("={{ {")
        and '"createTenant":"Create a tenant"' in (NODE["subtitle"])
    )
    assert "subtitle: description.subtitle" in FILES["nodes/InstaMsg/InstaMsg.node.js"]


@pytest.mark.parametrize(
    "block, arg, names",
    [
        ("publishMessage", "qos", ["At most once (1)", "At least once (2)", "Exactly once (3)"]),
        (
            "publishMessage",
            "type",
            ["Publish on a topic (pub)", "Send to one client (peer to peer) (p2p)"],
        ),
        ("createClient", "type", ["Device", "User"]),
        ("getTenants", "sortOrder", ["Ascending (asc)", "Descending (desc)"]),
        (
            "getTenants",
            "sortBy",
            ["ID", "Name", "Created At", "Updated At", "Max Clients", "Max Messages"],
        ),
    ],
)
def test_options_are_named_in_words_with_their_values_kept(block, arg, names):
    own, collected = shown_for(block)
    param = own.get(arg) or collected[arg]
    assert [o["name"] for o in param["options"]] == names
    wanted = next(a for a in BLOCKS[block]["args"] if a["name"] == arg)["options"]
    assert [o["value"] for o in param["options"]] == wanted


@pytest.mark.parametrize("name", sorted(n for n, b in BLOCKS.items() if n8n.is_list(b)))
def test_lists_have_return_all_and_limit(name):
    show = {"resource": [BLOCKS[name]["tag"]], "operation": [name]}
    own = {
        p["name"]: p
        for p in PROPERTIES
        if p.get("displayOptions", {}).get("show", {}).get("operation") == [name]
    }
    assert own["returnAll"]["displayOptions"]["show"] == show
    assert own["returnAll"]["default"] is False
    assert own["limit"]["default"] == n8n.LIMIT_DEFAULT
    assert own["limit"]["displayOptions"]["show"]["returnAll"] == [False]
    assert NODE["operations"][name]["list"] is True


@pytest.mark.parametrize("name", ["InstaMsg", "InstaMsgTrigger"])
def test_a_codex_file_lets_n8n_search_find_the_node_and_links_our_docs(name):
    codex = json.loads(FILES[f"nodes/{name}/{name}.node.json"])
    assert {"IoT", "MQTT", "device", "telemetry"} <= set(codex["alias"])
    assert codex["categories"] == n8n.CATEGORIES
    # n8n's loader reads both links (it fails on a codex without "resources").
    assert codex["resources"]["primaryDocumentation"] == [{"url": n8n.DOCS_URL}]
    assert codex["resources"]["credentialDocumentation"] == [{"url": n8n.CREDENTIAL_DOCS_URL}]


@pytest.mark.parametrize(
    "block, arg, method",
    [
        ("getClients", "tenantId", "searchTenants"),
        ("getSingleTenant", "id", "searchTenants"),
        ("publishMessage", "clientId", "searchClients"),
        ("createTenant", "name", None),
    ],
)
def test_tenants_and_clients_are_picked_from_a_list(block, arg, method):
    own, _ = shown_for(block)
    assert own[arg]["type"] == ("resourceLocator" if method else "string")
    if method:
        assert own[arg]["displayName"] == method.removeprefix("search").removesuffix("s")


def test_the_trigger_picks_its_tenant_and_client_from_a_list_too():
    trigger = json.loads(FILES["nodes/InstaMsgTrigger/InstaMsgTrigger.description.json"])
    by_name = {p["name"]: p for p in trigger["properties"]}
    for name, method in (("tenantId", "searchTenants"), ("clientId", "searchClients")):
        assert by_name[name]["type"] == "resourceLocator"
        assert by_name[name]["modes"][0]["typeOptions"]["searchListMethod"] == method
    for path in (
        "nodes/InstaMsg/InstaMsg.node.js",
        "nodes/InstaMsgTrigger/InstaMsgTrigger.node.js",
    ):
        assert "this.methods = { listSearch };" in FILES[path]


def test_the_instant_trigger_asks_what_the_polling_one_does_and_subscribes_to_an_event():
    """One Event option per event the connector offers (message.received the default), and the
    polling trigger's tenant, client and topic parameters, each shown for the events whose
    filter takes it (sent as the subscription's filter)."""
    from connector.events.kinds import EVENTS, KINDS

    instant = json.loads(
        FILES["nodes/InstaMsgInstantTrigger/InstaMsgInstantTrigger.description.json"]
    )
    polling = json.loads(FILES["nodes/InstaMsgTrigger/InstaMsgTrigger.description.json"])
    event, *rest = instant["properties"]
    values = [option["value"] for option in event["options"]]
    assert [instant["events"][v]["event"] for v in values] == list(EVENTS)
    assert event["default"] == values[0] == "newMessage"  # what workflows saved before hold
    for value, said in instant["events"].items():
        kind = KINDS[said["event"]]
        assert (said["filter"], said["optional"]) == (list(kind.filter), list(kind.optional))
        shown = [p["name"] for p in rest if value in p.get("displayOptions", {}).get("show", {})
                 .get("event", [value])]  # fmt: skip
        assert shown == list(kind.fields)
    unshown = [{k: v for k, v in p.items() if k != "displayOptions"} for p in rest]
    assert unshown == polling["properties"][1:]
    source = FILES["nodes/InstaMsgInstantTrigger/InstaMsgInstantTrigger.node.js"]
    # Webhook-based, as n8n's own: its methods make, check and remove the subscription.
    for needed in ("webhooks:", "checkExists", "async create", "async delete", "verified("):
        assert needed in source, needed
