"""manifest.json and openapi.json: generated from the schemas, committed, and fresh."""

import pytest

from connector import manifest
from connector.registry import REGISTRY

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
    "path", [manifest.MANIFEST_FILE, manifest.OPENAPI_FILE], ids=lambda p: p.name
)
def test_committed_file_is_fresh(path):
    built = (
        manifest.build_manifest() if path == manifest.MANIFEST_FILE else manifest.build_openapi()
    )
    assert path.read_text() == manifest.render(built), "stale: run `make manifest`"


def test_check_command_reports_fresh_files(capsys):
    assert manifest.main(["--check"]) == 0


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
            assert set(arg) <= {"name", "type", "info", "required", "options", "structure"}
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
    }
    assert args["provisioningId"]["required"] is True
    assert args["gsmApn"]["required"] is False
    assert blocks["getAccessToken"]["args"][0]["type"] == "credentials"
    # every bearer block shows both ways to authenticate
    for name in ("createTenant", "publishMessage", "getFiles"):
        first = [(a["name"], a["type"], a["required"]) for a in blocks[name]["args"][:3]]
        assert first == [
            ("accessToken", "String", False),
            ("clientKey", "credentials", False),
            ("clientSecret", "credentials", False),
        ]
    assert [a["name"] for a in blocks["getClientLogs"]["args"]][-2:] == ["level", "creator"]


def test_openapi_has_one_operation_per_block():
    doc = manifest.build_openapi()
    operations = {
        item["post"]["operationId"]
        for path, item in doc["paths"].items()
        if path.startswith("/blocks/")
    }
    assert operations == set(REGISTRY.names())
    schemas = doc["components"]["schemas"]
    publish = schemas["PublishMessage"]
    assert set(publish["required"]) >= {"tenantId", "clientId", "topic", "qos"}
    assert publish["anyOf"] == [
        {"required": ["accessToken"]},
        {"required": ["clientKey", "clientSecret"]},
    ]
    assert publish["properties"]["accessToken"]["writeOnly"] is True
    assert "anyOf" not in schemas["GetAccessToken"]
    for name, schema in schemas.items():
        for prop, spec in schema.get("properties", {}).items():
            if name.endswith("Envelope"):
                continue
            assert spec.get("description"), f"{name}.{prop} has no description"


def test_openapi_documents_the_api_key_and_idempotency_key():
    doc = manifest.build_openapi()
    assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    assert doc["security"] == [{}, {"apiKey": []}]
    publish = doc["paths"]["/blocks/publishMessage"]["post"]
    assert [p["name"] for p in publish["parameters"]] == ["Idempotency-Key"]
    assert {"401", "409", "422", "429"} <= set(publish["responses"])
    download = doc["paths"]["/blocks/downloadFile"]["post"]
    assert [p["name"] for p in download["parameters"]] == ["Idempotency-Key", "stream"]
