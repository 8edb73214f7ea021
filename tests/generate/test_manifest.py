"""manifest.json and openapi.json: generated from the schemas, committed, and fresh."""

import pytest

from connector.engine.registry import REGISTRY
from connector.generate import __main__ as docs_main
from connector.generate import manifest, markdown, openapi, samples
from tests.support.servers import ROOT

DOCUMENTED = [
    "getAccessToken",
    "invalidateAccessToken",
    "createTenant",
    "getTenants",
    "getSingleTenant",
    "updateTenant",
    "deleteTenant",
    "createClient",
    "getClients",
    "getSingleClient",
    "updateClient",
    "deleteClient",
    "getClientAuthToken",
    "getClientInfo",
    "getClientNetworkLogs",
    "getClientSessions",
    "getClientMetrics",
    "getClientLogs",
    "updateClientAuthToken",
    "updateClientCertificate",
    "getFiles",
    "uploadFile",
    "downloadFile",
    "deleteFile",
    "getClientConfig",
    "updateClientConfig",
    "deleteClientConfig",
    "publishMessage",
    "getMessages",
    "releaseMessage",
]


def test_the_registry_holds_exactly_the_documented_blocks():
    assert sorted(REGISTRY.names()) == sorted(DOCUMENTED)


@pytest.mark.parametrize(
    "path", [docs_main.MANIFEST_FILE, docs_main.OPENAPI_FILE], ids=lambda p: p.name
)
def test_committed_file_is_fresh(path):
    built = (
        manifest.build_manifest() if path == docs_main.MANIFEST_FILE else openapi.build_openapi()
    )
    assert path.read_text() == manifest.render(built), "stale: run `make manifest`"


def test_the_blocks_reference_is_fresh():
    expected = markdown.blocks_markdown(manifest.build_manifest())
    assert docs_main.BLOCKS_DOC.read_text() == expected, "stale: run `make manifest`"


def test_the_blocks_reference_lists_every_block_and_its_result():
    text = docs_main.BLOCKS_DOC.read_text()
    for name in REGISTRY.names():
        assert f"\n## {name}\n" in text
    assert "Give at least one of: `name`, `description`, `maxClients`, `maxMessages`." in text
    assert "| `messageId` | String |" in text


def test_check_command_reports_fresh_files(capsys):
    assert docs_main.main(["--check"]) == 0


def test_manifest_shape_and_every_arg_documented():
    doc = manifest.build_manifest()
    assert doc["package"] == "InstaMsg"
    assert doc["accounts"]["credentials"] == ["clientKey", "clientSecret"]
    assert [b["name"] for b in doc["blocks"]] == REGISTRY.names()
    types = {t["name"] for t in doc["types"]}
    for blk in doc["blocks"]:
        assert blk["description"]
        assert {c["name"] for c in blk["callbacks"]} == {"success", "error"}
        for arg in blk["args"]:
            assert set(arg) <= {
                "name",
                "type",
                "info",
                "required",
                "options",
                "optionLabels",
                "structure",
                "default",
                "example",
                "minimum",
                "maximum",
                "maxBytes",
                "pattern",
                "format",
                "unit",
            }
            assert "example" in arg, f"{blk['name']}.{arg['name']} has no example"
            assert arg["info"].strip(), f"{blk['name']}.{arg['name']} has no info"
            assert arg["type"] in types
            if arg["type"] == "Select":
                assert arg["options"]
    assert {"Datepicker", "Map", "List", "Select", "Array", "JSON"} <= types


def test_manifest_reflects_the_schemas():
    blocks = {b["name"]: b for b in manifest.build_manifest()["blocks"]}
    args = {a["name"]: a for a in blocks["createClient"]["args"]}
    assert args["type"] == {
        "name": "type",
        "type": "Select",
        "info": args["type"]["info"],
        "required": True,
        "options": ["device", "user"],
        "example": "device",
    }
    assert args["provisioningId"]["required"] is True
    assert args["gsmApn"]["required"] is False
    assert blocks["getAccessToken"]["args"][0]["type"] == "credentials"
    # every bearer block shows both ways to authenticate
    for name in ("createTenant", "publishMessage", "getFiles"):
        first = [(a["name"], a["type"], a["required"]) for a in blocks[name]["args"][:3]]
        assert first == [
            ("accessToken", "credentials", False),
            ("clientKey", "credentials", False),
            ("clientSecret", "credentials", False),
        ]
    assert [a["name"] for a in blocks["getClientLogs"]["args"]][-2:] == ["level", "creator"]


def test_openapi_has_one_operation_per_block():
    doc = openapi.build_openapi()
    operations = {
        item["post"]["operationId"]
        for path, item in doc["paths"].items()
        if path.startswith("/blocks/")
    }
    assert operations == set(REGISTRY.names())
    schemas = doc["components"]["schemas"]
    publish = schemas["PublishMessage"]
    assert set(publish["required"]) >= {"tenantId", "clientId", "topic", "qos"}
    # The rule in prose and x-oneOf, never a schema-level anyOf (generators reduce it to Any).
    assert "anyOf" not in publish and "oneOf" not in publish
    assert publish["x-oneOf"] == [[["accessToken"], ["clientKey", "clientSecret"]]]
    assert publish["description"].startswith("Give accessToken, or clientKey and clientSecret")
    assert publish["properties"]["accessToken"]["writeOnly"] is True
    assert "anyOf" not in schemas["GetAccessToken"]
    for name, schema in schemas.items():
        for prop, spec in schema.get("properties", {}).items():
            if not name.startswith(tuple(b.schema.__name__ for b in REGISTRY)):
                continue
            assert spec.get("description"), f"{name}.{prop} has no description"


def test_openapi_documents_the_api_key_and_idempotency_key():
    doc = openapi.build_openapi()
    assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    assert doc["security"] == [{}, {"apiKey": []}]
    publish = doc["paths"]["/blocks/publishMessage"]["post"]
    assert [p["name"] for p in publish["parameters"]] == ["Idempotency-Key"]
    assert {"401", "409", "422", "429", "503"} <= set(publish["responses"])
    download = doc["paths"]["/blocks/downloadFile"]["post"]
    assert [p["name"] for p in download["parameters"]] == ["Idempotency-Key", "stream"]


# -- issue 9 part 3: a complete manifest ---------------------------------------------------

BLOCKS = {b["name"]: b for b in manifest.build_manifest()["blocks"]}
BEARER_BLOCKS = [
    name for name in DOCUMENTED if name not in ("getAccessToken", "invalidateAccessToken")
]


def args_of(block):
    return {a["name"]: a for a in BLOCKS[block]["args"]}


@pytest.mark.parametrize(
    "block, arg",
    [
        ("createTenant", "accessToken"),
        ("getAccessToken", "clientKey"),
        ("getAccessToken", "clientSecret"),
        ("publishMessage", "clientKey"),
        ("invalidateAccessToken", "token"),
        ("createClient", "gsmPassword"),
        ("createClient", "gsmSimPin"),
        ("createClient", "provisioningKey"),
        ("updateClient", "provisioningKey"),
    ],
)
def test_secrets_are_typed_credentials(block, arg):
    assert args_of(block)[arg]["type"] == "credentials"


@pytest.mark.parametrize("block", BEARER_BLOCKS)
def test_bearer_blocks_state_the_credential_rule_as_a_one_of_group(block):
    assert BLOCKS[block]["oneOf"][0] == [["accessToken"], ["clientKey", "clientSecret"]]
    assert not any(args_of(block)[n]["required"] for n in ("accessToken", "clientKey"))


def test_upload_file_states_its_file_sources_as_a_one_of_group():
    assert BLOCKS["uploadFile"]["oneOf"] == [
        [["accessToken"], ["clientKey", "clientSecret"]],
        [["fileContent"], ["file"]],
    ]
    assert "oneOf" not in BLOCKS["getAccessToken"]


@pytest.mark.parametrize(
    "block, names",
    [
        ("updateTenant", ["name", "description", "maxClients", "maxMessages"]),
        ("updateClient", ["type", "name", "description", "subTopics", "pubTopics"]),
    ],
)
def test_updates_show_their_at_least_one_rule(block, names):
    assert BLOCKS[block]["atLeastOne"][: len(names)] == names


SELECTS = [
    ("createClient", "type", ["device", "user"]),
    ("updateClient", "type", ["device", "user"]),
    ("getClients", "type", ["device", "user"]),
    ("getClients", "sortOrder", ["asc", "desc"]),
    ("getClientMetrics", "interval", ["day", "month"]),
    ("getClientLogs", "level", ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]),
    ("getClientLogs", "creator", ["InstaMsg", "client"]),
    ("publishMessage", "type", ["pub", "p2p"]),
    ("getMessages", "type", ["pub", "p2p"]),
]


@pytest.mark.parametrize("block, arg, options", SELECTS)
def test_fixed_sets_are_selects_with_their_options(block, arg, options):
    assert args_of(block)[arg]["type"] == "Select"
    assert args_of(block)[arg]["options"] == options


SORTS = {
    "getTenants": ["id", "name", "created_at", "updated_at", "max_clients", "max_messages"],
    "getClients": ["id", "name", "type", "created_at", "updated_at"],
    "getClientNetworkLogs": ["ts", "network"],
    "getClientSessions": ["start", "end", "messages"],
}


@pytest.mark.parametrize("block", SORTS)
def test_sort_fields_are_selects_of_the_listed_items_fields(block):
    assert args_of(block)["sortBy"]["type"] == "Select"
    assert args_of(block)["sortBy"]["options"] == SORTS[block]


def test_a_client_state_is_a_select():
    assert args_of("getClients")["state"]["options"] == ["online", "offline"]


@pytest.mark.parametrize(
    "block, arg, expected",
    [
        ("publishMessage", "duplicate", {"default": False}),
        ("publishMessage", "save", {"default": True}),
        ("getClientMetrics", "interval", {"default": "day"}),
        ("publishMessage", "id", {"minimum": 1, "maximum": 65535, "example": 1}),
        ("publishMessage", "qos", {"options": [1, 2, 3]}),
        ("createTenant", "maxClients", {"minimum": 0, "example": 10}),
        ("createClient", "provisioningKey", {"pattern": "^[A-Za-z0-9]{6,12}$"}),
        ("getMessages", "start", {"format": "date-time", "unit": "unix-ms"}),
        ("getAccessToken", "clientKey", {"example": "demo-key"}),
    ],
)
def test_defaults_ranges_formats_and_examples(block, arg, expected):
    entry = args_of(block)[arg]
    assert {key: entry.get(key) for key in expected} == expected


@pytest.mark.parametrize("block", DOCUMENTED)
def test_every_block_has_outputs_with_samples(block):
    outputs = BLOCKS[block]["outputs"]
    assert outputs["key"] == "to"
    assert outputs["type"] in ("object", "list")
    assert outputs["fields"], block
    assert outputs["sample"] not in (None, [], {}), block
    for output in outputs["fields"]:
        assert output["info"], (block, output["name"])


def test_outputs_carry_the_fields_a_later_step_maps():
    token = {f["name"]: f for f in BLOCKS["getAccessToken"]["outputs"]["fields"]}
    assert token["access_token"]["type"] == "String"
    assert token["access_token"]["sample"]
    published = BLOCKS["publishMessage"]["outputs"]
    assert [f["name"] for f in published["fields"]] == ["messageId"]
    files = {f["name"] for f in BLOCKS["getFiles"]["outputs"]["fields"]}
    assert "contentType" in files and "content_type" not in files
    assert BLOCKS["getFiles"]["outputs"]["type"] == "list"


@pytest.mark.parametrize("block", DOCUMENTED)
def test_recorded_samples_match_the_declared_results(block):
    blk = REGISTRY.get(block)
    schema, many = manifest.result_of(blk)
    sample = samples.recorded()[block]
    items = sample if many else [sample]
    for item in items:
        assert schema().validate(item) == {}, (block, item)


def test_the_sandbox_still_answers_what_was_recorded():
    """Recorded again now, every block's sample has the same fields as the committed one."""
    fresh = samples.record_samples()
    for name, sample in samples.recorded().items():
        old = sample[0] if isinstance(sample, list) and sample else sample
        new = fresh[name][0] if isinstance(fresh[name], list) and fresh[name] else fresh[name]
        assert set(new) == set(old), name


def test_openapi_tags_servers_and_routes():
    doc = openapi.build_openapi()
    assert [t["name"] for t in doc["tags"]][:6] == [
        "token",
        "tenants",
        "clients",
        "messages",
        "files",
        "config",
    ]
    assert doc["servers"][0]["url"] == "/"
    paths = doc["paths"]
    for route in ("/blocks", "/manifest.json", "/api/InstaMsg", "/openapi.json", "/healthz"):
        assert route in paths, route
    # Written, and documented as soon as their routes are served.
    assert set(openapi.catalogue_paths()) >= {"/", "/readyz", "/metrics"}
    assert paths["/blocks/getTenants"]["post"]["tags"] == ["tenants"]
    assert paths["/blocks/getTenants"]["post"]["x-rapidapi"]["path"] == "/api/InstaMsg/getTenants"
    assert paths["/blocks/getAccessToken"]["post"]["tags"] == ["token"]
    assert paths["/blocks/uploadFile"]["post"]["tags"] == ["files"]
    assert paths["/blocks/getClientConfig"]["post"]["tags"] == ["config"]
    assert paths["/blocks/releaseMessage"]["post"]["tags"] == ["messages"]
    assert set(doc["components"]["headers"]) >= {
        "X-Request-Id",
        "Idempotent-Replayed",
        "Retry-After",
        "Allow",
    }
    responses = paths["/blocks/publishMessage"]["post"]["responses"]
    assert "Retry-After" in responses["503"]["headers"]
    assert "Idempotent-Replayed" in responses["200"]["headers"]
    example = responses["422"]["content"]["application/json"]["example"]
    assert example["contextWrites"]["to"]["status_code"] == "REQUIRED_FIELDS"


def test_openapi_results_are_typed_under_to():
    doc = openapi.build_openapi()
    schemas = doc["components"]["schemas"]
    to = schemas["getAccessTokenSuccess"]["properties"]["contextWrites"]["properties"]["to"]
    assert to == {"$ref": "#/components/schemas/AccessToken"}
    assert "access_token" in schemas["AccessToken"]["properties"]
    listed = schemas["getTenantsSuccess"]["properties"]["contextWrites"]["properties"]["to"]
    assert listed == {"type": "array", "items": {"$ref": "#/components/schemas/Tenant"}}


def test_json_and_form_bodies_have_their_own_schemas():
    doc = openapi.build_openapi()
    content = doc["paths"]["/blocks/createClient"]["post"]["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/CreateClient"}
    form = content["application/x-www-form-urlencoded"]["schema"]
    assert form == {"$ref": "#/components/schemas/CreateClientForm"}
    form_props = doc["components"]["schemas"]["CreateClientForm"]["properties"]
    assert all(p["type"] == "string" for p in form_props.values())
    upload = doc["paths"]["/blocks/uploadFile"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert (
        doc["components"]["schemas"]["UploadFileForm"]["properties"]["file"]["format"] == "binary"
    )


@pytest.mark.parametrize(
    "block, arg, pattern",
    [
        ("createTenant", "maxClients", r"^\s*[0-9]+\s*$"),
        ("publishMessage", "id", r"^\s*0*[1-9][0-9]*\s*$"),
        ("publishMessage", "qos", r"^\s*(1|2|3)\s*$"),
    ],
)
def test_number_text_patterns_match_the_minimum(block, arg, pattern):
    import re

    schema = openapi.build_openapi()["components"]["schemas"][REGISTRY.get(block).schema.__name__]
    text = [b for b in schema["properties"][arg]["anyOf"] if b["type"] == "string"][0]
    assert text["pattern"] == pattern
    assert not re.match(pattern, "-1")


def test_datepickers_document_date_time_and_the_unit():
    schema = openapi.build_openapi()["components"]["schemas"]["GetMessages"]["properties"]["start"]
    assert schema["anyOf"][0] == {"type": "string", "format": "date-time", "nullable": True}
    assert schema["x-unit"] == "unix-ms"


def test_message_ids_are_told_apart():
    assert "not the id argument" in BLOCKS["releaseMessage"]["description"]
    assert "releaseMessage takes that one" in BLOCKS["publishMessage"]["description"]
    assert "not the messageId" in args_of("publishMessage")["id"]["info"]


def test_every_error_code_is_documented_under_each_status_it_answers_with():
    from connector.errors import ALL, ApiError
    from connector.upstream.outcomes import STATUS_RULES

    responses = openapi.build_openapi()["paths"]["/blocks/publishMessage"]["post"]["responses"]
    for error in ALL:
        assert error.code in responses[str(error.http_status)]["description"], error.code
    for status in (s for s in STATUS_RULES if s < 500):  # InstaMsg's own 4xx: API_ERROR
        assert ApiError.code in responses[str(status)]["description"], status
    assert "RATE_LIMITED" in responses["429"]["description"]
    assert "Retry-After" in responses["429"]["headers"]


def test_a_success_envelope_requires_its_result_under_to():
    schemas = openapi.build_openapi()["components"]["schemas"]
    success = schemas["getTenantsSuccess"]
    assert success["required"] == ["callback", "contextWrites"]
    writes = success["properties"]["contextWrites"]
    assert writes["required"] == ["to"]
    assert writes["properties"]["to"]["type"] == "array"
    errors = schemas["ErrorWrites"]  # an error's key is `to`, or the one the call named
    assert "required" not in errors and "to" in errors["properties"]
    assert errors["additionalProperties"] == {"$ref": "#/components/schemas/ErrorBody"}


def test_list_results_read_as_lists_in_the_blocks_doc():
    text = docs_main.BLOCKS_DOC.read_text()
    section = text.split("## getTenants\n", 1)[1].split("\n## ", 1)[0]
    assert "a list of objects with" in section


def test_the_documented_error_classes_are_all_of_them():
    from connector.errors import ALL, ConnectorError

    def subclasses(cls):
        return {cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))}

    from connector.mcp.runners import ConnectorUnavailable

    # The MCP face's own code (a deployed connector that does not answer) is told in
    # docs/mcp.md; the HTTP face never answers it.
    assert "CONNECTOR_UNAVAILABLE" in (ROOT / "docs" / "mcp.md").read_text()
    # So are a hook sender's codes, in docs/hooks.md: no block call answers them.
    from connector.hooks.errors import ALL as HOOK_ERRORS

    hooks_doc = (ROOT / "docs" / "hooks.md").read_text()
    assert all(f"`{error.code}`" in hooks_doc for error in HOOK_ERRORS)
    # A kind the connector tells apart inside (the event watcher narrows its reads on it) is
    # answered under its parent's documented code.
    from connector.errors import AnswerTooLarge, UpstreamUnavailable

    assert AnswerTooLarge.code == UpstreamUnavailable.code
    own = {ConnectorError, ConnectorUnavailable, AnswerTooLarge, *HOOK_ERRORS}
    assert set(ALL) == subclasses(ConnectorError) - own
    assert len({error.code for error in ALL}) == len(ALL)


def document_examples(document):
    """(where, example, schema) for every example the OpenAPI document gives: a property's
    own, and a response's or request body's beside its schema."""
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if "example" in node and "schema" in node:
                found.append((where, node["example"], node["schema"]))
            elif "example" in node and ("type" in node or "anyOf" in node):
                found.append((where, node["example"], {k: v for k, v in node.items()}))
            for key, value in node.items():
                if key != "example":
                    walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(document, "#")
    return found


def test_every_example_in_the_openapi_document_fits_its_own_schema():
    """Examples come from the same tables as their schemas (third-party linters check it
    too: `make check` runs redocly's and spectral's)."""
    from openapi_schema_validator import OAS30Validator

    document = openapi.build_openapi()
    examples = document_examples(document)
    assert len(examples) > 100
    failures = []
    for where, example, schema in examples:
        # The schema as the root of a document that holds the components its $refs name.
        validator = OAS30Validator({"allOf": [schema], "components": document["components"]})
        errors = [error.message for error in validator.iter_errors(example)]
        if errors:
            failures.append((where, errors[:2]))
    assert failures == []
