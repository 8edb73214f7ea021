"""manifest.json and openapi.json, both built from the block registry.

``python -m connector.manifest`` writes both files at the repository root;
``python -m connector.manifest --check`` fails when a committed file is stale.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from connector import __version__
from connector.errors import ALL as ERRORS
from connector.registry import REGISTRY
from schemas.fields import TYPES, ArgField

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_FILE = ROOT / "manifest.json"
OPENAPI_FILE = ROOT / "openapi.json"

PACKAGE = {
    "package": "InstaMsg",
    "tagline": "InstaMsg IoT messaging and device management, block by block",
    "description": (
        "InstaMsg is a real-time messaging and device-management platform for the Internet of "
        "Things. These blocks manage its tenants and clients (devices and users), publish and "
        "list messages, and handle client files, configuration, logs, sessions and metrics."
    ),
    "version": __version__,
    "keywords": ["IoT", "MQTT", "messaging", "devices", "InstaMsg"],
    "accounts": {"domain": "instamsg.io", "credentials": ["clientKey", "clientSecret"]},
    "steps": [
        "Log in to your InstaMsg account.",
        "Create an app.",
        "Copy the app's client key (clientKey) and client secret (clientSecret).",
        "Call getAccessToken with them; pass the token it answers as accessToken to the others.",
    ],
}

TYPE_INFO = {
    "credentials": "A credential of your InstaMsg account; never logged or echoed.",
    "String": "Text. A number is taken as its text.",
    "Number": "A number, or text holding one.",
    "Boolean": "true or false; 1/0 and yes/no are accepted too.",
    "Select": "One of the listed options, in any case.",
    "List": "A list of strings: a JSON array, or comma-separated text.",
    "JSON": "A JSON object, or text holding one.",
    "Datepicker": "A date and time: ISO 8601, YYYY-MM-DD[ HH:MM[:SS]], or unix time "
    "(seconds or milliseconds).",
    "Map": 'A location: "lat,lng", an object with lat and lng, or [lat, lng].',
    "Array": "A list of objects, each as the argument's structure says.",
    "File": "A file: an http(s) URL to fetch, or a multipart part.",
}

CALLBACKS = [
    {"name": "success", "info": "The block's result, under contextWrites."},
    {
        "name": "error",
        "info": "What went wrong: status_code, status_msg and, where known, "
        "the fields at fault or InstaMsg's own answer.",
    },
]


def arg_entry(name: str, field: ArgField) -> dict:
    entry = {
        "name": name,
        "type": field.manifest_type,
        "info": field.metadata["info"],
        "required": bool(field.required),
    }
    entry.update(field.manifest_extra())
    return entry


def block_entry(blk) -> dict:
    return {
        "name": blk.name,
        "description": blk.description,
        "args": [arg_entry(name, field) for name, field in blk.args],
        "callbacks": CALLBACKS,
    }


def build_manifest() -> dict:
    return {
        **PACKAGE,
        "types": [{"name": t.manifest_type, "info": TYPE_INFO[t.manifest_type]} for t in TYPES],
        "blocks": [block_entry(blk) for blk in REGISTRY],
    }


# -- OpenAPI ------------------------------------------------------------------------


def arg_property(converter, field, ret, **kwargs):
    """Our field types describe what they accept better than the generic mapping."""
    if not isinstance(field, ArgField):
        return {}
    ret.pop("type", None)
    extra = dict(field.openapi_schema())
    extra["description"] = field.metadata["info"]
    if field.metadata.get("secret"):
        extra["writeOnly"] = True
        extra["x-secret"] = True
    return extra


ERROR_ENVELOPE = {
    "type": "object",
    "required": ["callback", "contextWrites"],
    "properties": {
        "callback": {"type": "string", "enum": ["error"]},
        "contextWrites": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["status_code", "status_msg"],
                "properties": {
                    "status_code": {"type": "string", "enum": [e.code for e in ERRORS]},
                    "status_msg": {"type": "string"},
                    "retryable": {"type": "boolean"},
                    "retry_after_s": {"type": "number"},
                    "fields": {"type": "array", "items": {"type": "string"}},
                    "errors": {"type": "object"},
                    "upstream": {"type": "object"},
                    "request_id": {"type": "string"},
                },
            },
        },
    },
}
SUCCESS_ENVELOPE = {
    "type": "object",
    "required": ["callback", "contextWrites"],
    "properties": {
        "callback": {"type": "string", "enum": ["success"]},
        "contextWrites": {"type": "object"},
    },
}
ERROR_STATUSES = {
    "400": "INVALID_REQUEST: the body is not JSON, form or multipart, or not an object.",
    "401": "UNAUTHORIZED (no valid X-API-Key), or API_ERROR: InstaMsg refused the credentials.",
    "404": "UNKNOWN_BLOCK, or API_ERROR: InstaMsg has no such resource.",
    "409": "IDEMPOTENCY_KEY_IN_USE: the first call with this Idempotency-Key still runs.",
    "413": "PAYLOAD_TOO_LARGE: the body (or a file) is over the limit.",
    "422": "REQUIRED_FIELDS, INVALID_FIELDS or IDEMPOTENCY_KEY_REUSED.",
    "429": "API_ERROR: InstaMsg limits the rate; see Retry-After.",
    "502": "API_ERROR for an InstaMsg 5xx, or UPSTREAM_UNAVAILABLE.",
    "504": "UPSTREAM_TIMEOUT: InstaMsg did not answer in time.",
    "default": "Any other error, such as API_ERROR with InstaMsg's own 4xx status.",
}


def _operation(blk) -> dict:
    args_ref = {"$ref": f"#/components/schemas/{blk.schema.__name__}"}
    wrapped = {
        "type": "object",
        "required": ["args"],
        "properties": {"args": args_ref, "to": {"type": "string"}},
    }
    form_type = (
        "multipart/form-data" if blk.body == "multipart" else ("application/x-www-form-urlencoded")
    )
    success = {"application/json": {"schema": {"$ref": "#/components/schemas/SuccessEnvelope"}}}
    operation = {
        "operationId": blk.name,
        "summary": blk.description,
        "tags": [blk.path.split("{")[0].strip("/").split("/")[-1] or "auth"],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"anyOf": [wrapped, args_ref]}},
                form_type: {"schema": args_ref},
            },
        },
        "responses": {"200": {"description": "The block's result.", "content": success}},
    }
    operation["parameters"] = [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Up to 255 characters. A repeated call with the same key and "
            "arguments answers what the first answered (Idempotent-Replayed: true).",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ]
    if blk.streamable:
        operation["parameters"].append(
            {
                "name": "stream",
                "in": "query",
                "required": False,
                "description": "1 answers the raw bytes instead of base64 in JSON.",
                "schema": {"type": "string", "enum": ["0", "1"]},
            }
        )
        success["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for status, description in ERROR_STATUSES.items():
        operation["responses"][status] = {"description": description, "content": error_ref}
    return operation


def build_openapi() -> dict:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="InstaMsg connector",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[plugin],
        info={"description": PACKAGE["description"]},
    )
    plugin.converter.add_attribute_function(arg_property)
    spec.components.security_scheme(
        "apiKey",
        {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "Needed when the connector runs with CONNECTOR_API_KEYS set.",
        },
    )
    spec.components.schema("SuccessEnvelope", SUCCESS_ENVELOPE)
    spec.components.schema("ErrorEnvelope", ERROR_ENVELOPE)
    for blk in REGISTRY:
        if blk.schema.__name__ not in spec.components.schemas:
            spec.components.schema(blk.schema.__name__, schema=blk.schema)
        entry = {
            "operationId": f"{blk.name}Manifest",
            "summary": f"The manifest entry of {blk.name}: its description and arguments.",
            "tags": ["manifest"],
            "responses": {
                "200": {
                    "description": "name, description, args, callbacks",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
        spec.path(path=f"/blocks/{blk.name}", operations={"post": _operation(blk), "get": entry})
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "operationId": "healthz",
                "summary": "Liveness.",
                "responses": {"200": {"description": '{"status": "ok"}'}},
            }
        },
    )
    document = spec.to_dict()
    # The key is needed only where the operator set CONNECTOR_API_KEYS: none, or the key.
    document["security"] = [{}, {"apiKey": []}]
    for schema in document["components"]["schemas"].values():
        props = schema.get("properties", {})
        if "accessToken" in props and "clientKey" in props:
            # Two ways to authenticate: a token, or the app's credentials (managed tokens).
            schema["anyOf"] = [
                {"required": ["accessToken"]},
                {"required": ["clientKey", "clientSecret"]},
            ]
    return document


@lru_cache(maxsize=1)
def manifest() -> dict:
    return build_manifest()


@lru_cache(maxsize=1)
def openapi() -> dict:
    return build_openapi()


def render(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    import blocks  # noqa: F401  (registers every block)

    argv = sys.argv[1:] if argv is None else argv
    outputs = {MANIFEST_FILE: render(build_manifest()), OPENAPI_FILE: render(build_openapi())}
    if "--check" in argv:
        stale = [p.name for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("stale: " + ", ".join(stale) + " (run: make manifest)", file=sys.stderr)
            return 1
        print("manifest.json and openapi.json are up to date")
        return 0
    for path, text in outputs.items():
        path.write_text(text)
        print(f"wrote {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
