"""manifest.json and openapi.json, both built from the block registry.

``python -m connector.manifest`` writes both files at the repository root;
``python -m connector.manifest --check`` fails when a committed file is stale;
``python -m connector.manifest --record-samples`` runs every block once against the
sandbox and keeps what each answered in blocks/samples.json (the manifest's sample outputs).
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from connector import __version__
from connector.errors import ALL as ERRORS
from connector.errors import ConnectorError
from connector.registry import REGISTRY
from schemas.fields import TYPES, ArgField

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_FILE = ROOT / "manifest.json"
OPENAPI_FILE = ROOT / "openapi.json"
SAMPLES_FILE = ROOT / "blocks" / "samples.json"
BLOCKS_DOC = ROOT / "docs" / "blocks.md"

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

#: How to read the block-level rules of a manifest entry.
RULES = {
    "oneOf": "A list of rules; each rule is a list of groups of arguments, of which one "
    'group is given, complete: [[["accessToken"], ["clientKey", "clientSecret"]]] '
    "reads: accessToken, or clientKey and clientSecret. Each argument of a group is marked "
    "required: false on its own.",
    "atLeastOne": "Arguments of which at least one must be given (the update blocks).",
    "outputs": "What the block answers under contextWrites.to (or the key given as to): "
    "an object or a list of objects, its fields with a sample value each, recorded from "
    "the sandbox.",
}

#: The resource a block belongs to, from the last of these words in its path.
TAGS = {
    "oauth2": "token",
    "tenants": "tenants",
    "clients": "clients",
    "messages": "messages",
    "files": "files",
    "config": "config",
}
TAG_INFO = {
    "token": "OAuth2 access tokens: get one from the app's key and secret, or revoke one.",
    "tenants": "Tenants: the accounts that own clients and share out message quotas.",
    "clients": "Clients (devices and users), their tokens, logs, sessions and metrics.",
    "messages": "Publishing, listing and releasing messages.",
    "files": "Files a client stores on InstaMsg.",
    "config": "A client's configuration object.",
    "catalogue": "What this connector offers: the manifest, the blocks, health and metrics.",
    "rapidapi": "The RapidAPI-compatible route: the same blocks, always HTTP 200.",
}

CALLBACKS = [
    {"name": "success", "info": "The block's result, under contextWrites."},
    {
        "name": "error",
        "info": "What went wrong: status_code, status_msg and, where known, "
        "the fields at fault or InstaMsg's own answer.",
    },
]


def tag_of(blk) -> str:
    words = [TAGS[w] for w in blk.path.split("/") if w in TAGS]
    return words[-1]


def field_names(blk, names) -> list[str]:
    """Schema attribute names as the argument names callers use."""
    loaded = blk.loader.fields
    return [loaded[name].data_key or name for name in names]


def one_of_names(blk) -> list[list[list[str]]]:
    return [[field_names(blk, group) for group in rule] for rule in blk.loader.one_of]


def arg_entry(name: str, field: ArgField) -> dict:
    entry = {
        "name": name,
        "type": field.manifest_type,
        "info": field.metadata["info"],
        "required": bool(field.required),
    }
    entry.update(field.manifest_extra())
    for key in ("minimum", "maximum"):
        value = getattr(field, key, None)
        if value is not None:
            entry[key] = value
    pattern = getattr(field, "pattern", None)
    if pattern is not None:
        entry["pattern"] = "^" + pattern.pattern + "$"
    default = field.shown_default
    if default is not None:
        entry["default"] = default
    entry["example"] = field.shown_example
    return entry


# -- results --------------------------------------------------------------------------


OUTPUT_TYPES = [
    (fields.Boolean, "Boolean"),
    (fields.Integer, "Number"),
    (fields.Number, "Number"),
    (fields.List, "List"),
    (fields.Nested, "JSON"),
    (fields.Dict, "JSON"),
    (fields.String, "String"),
]


def result_of(blk) -> tuple[type[Schema], bool]:
    """The block's result schema, and whether the result is a list of them."""
    returns = blk.returns
    if isinstance(returns, list):
        return returns[0], True
    return returns, False


def output_type(field) -> str:
    for kind, name in OUTPUT_TYPES:
        if isinstance(field, kind):
            return name
    return "String"


@lru_cache(maxsize=1)
def samples() -> dict:
    return json.loads(SAMPLES_FILE.read_text()) if SAMPLES_FILE.exists() else {}


def outputs_entry(blk) -> dict:
    schema, many = result_of(blk)
    sample = samples().get(blk.name)
    first = (sample[0] if sample else None) if many else sample
    first = first if isinstance(first, dict) else {}
    return {
        "key": "to",
        "type": "list" if many else "object",
        "fields": [
            {
                "name": f.data_key or name,
                "type": output_type(f),
                "info": f.metadata.get("description", ""),
                "sample": first.get(f.data_key or name),
            }
            for name, f in schema().fields.items()
        ],
        "sample": sample,
    }


def block_entry(blk) -> dict:
    entry = {
        "name": blk.name,
        "description": blk.description,
        "tag": tag_of(blk),
        "args": [arg_entry(name, field) for name, field in blk.args],
    }
    if blk.loader.one_of:
        entry["oneOf"] = one_of_names(blk)
    if blk.loader.at_least_one:
        entry["atLeastOne"] = field_names(blk, blk.loader.at_least_one)
    entry["outputs"] = outputs_entry(blk)
    entry["callbacks"] = CALLBACKS
    return entry


def build_manifest() -> dict:
    return {
        **PACKAGE,
        "types": [{"name": t.manifest_type, "info": TYPE_INFO[t.manifest_type]} for t in TYPES],
        "rules": RULES,
        "tags": [{"name": name, "info": info} for name, info in TAG_INFO.items()],
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
    extra["example"] = field.shown_example
    if field.shown_default is not None:
        extra["default"] = field.shown_default
    if field.metadata.get("secret"):
        extra["writeOnly"] = True
        extra["x-secret"] = True
    if not field.required:
        extra["nullable"] = True  # null, like "", counts as not given
    return extra


def text_example(value) -> str:
    """An example as a form field carries it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def form_schema(blk) -> dict:
    """The block's arguments as form fields: all text, what flow builders send."""
    properties = {}
    required = []
    for name, field in blk.args:
        prop = field.form_schema()
        prop["description"] = field.metadata["info"]
        if prop.get("format") != "binary":
            prop["example"] = text_example(field.shown_example)
        if field.metadata.get("secret"):
            prop["writeOnly"] = True
        properties[name] = prop
        if field.required:
            required.append(name)
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    rules = rules_text(blk)
    if rules:
        schema["description"] = rules
    return schema


def rules_text(blk) -> str:
    """The block-level rules as a sentence (generators keep the model; the text says it)."""
    sentences = []
    for rule in blk.loader.one_of:
        groups = [" and ".join(field_names(blk, group)) for group in rule]
        sentences.append("Give " + ", or ".join(groups) + " (x-oneOf); without any: 422.")
    if blk.loader.at_least_one:
        sentences.append(
            "Give at least one of: " + ", ".join(field_names(blk, blk.loader.at_least_one)) + "."
        )
    return " ".join(sentences)


def refusal_example(blk) -> dict | None:
    """The 422 a call answers when it gives every required argument but no credentials:
    the error the block's own schema raises, as the envelope carries it."""
    if not blk.loader.one_of:
        return None
    skip = {name for group in blk.loader.one_of[0] for name in field_names(blk, group)}
    args = {
        name: field.shown_example for name, field in blk.args if field.required and name not in skip
    }
    try:
        blk.load(args)
    except ConnectorError as error:
        return {"callback": "error", "contextWrites": {"to": error.to_dict()}}
    return None


HEADERS = {
    "X-Request-Id": {
        "description": "The caller's X-Request-Id when it is 1 to 128 of A-Z a-z 0-9 . _ : -, "
        "else a new one. Error envelopes repeat it as request_id.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "true when the answer is the kept answer of an earlier call with the "
        "same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again (429 and 503).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "Allow": {
        "description": "The methods the route allows (on a 405).",
        "schema": {"type": "string"},
    },
    "Content-Disposition": {
        "description": "attachment, with the file's name (downloadFile with ?stream=1).",
        "schema": {"type": "string"},
    },
}


def headers(*names) -> dict:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


ERROR_BODY = {
    "type": "object",
    "required": ["status_code", "status_msg"],
    "properties": {
        "status_code": {"type": "string", "enum": [e.code for e in ERRORS]},
        "status_msg": {"type": "string", "description": "What went wrong and what to do."},
        "retryable": {"type": "boolean"},
        "retry_after_s": {"type": "number"},
        "fields": {"type": "array", "items": {"type": "string"}},
        "errors": {"type": "object"},
        "upstream": {"type": "object"},
        "request_id": {"type": "string"},
    },
}
WARNINGS = {
    "type": "array",
    "items": {"type": "string"},
    "description": "Arguments that are not the block's, ignored, with the closest name.",
}
ERROR_ENVELOPE = {
    "type": "object",
    "required": ["callback", "contextWrites"],
    "properties": {
        "callback": {"type": "string", "enum": ["error"]},
        "contextWrites": {
            "type": "object",
            "description": "The error under to, or under the key the call gave as to.",
            "properties": {"to": {"$ref": "#/components/schemas/ErrorBody"}},
            "additionalProperties": {"$ref": "#/components/schemas/ErrorBody"},
        },
        "warnings": WARNINGS,
    },
}
SUCCESS_ENVELOPE = {
    "type": "object",
    "required": ["callback", "contextWrites"],
    "properties": {
        "callback": {"type": "string", "enum": ["success"]},
        "contextWrites": {"type": "object"},
        "warnings": WARNINGS,
    },
}
ERROR_STATUSES = {
    "400": ("INVALID_REQUEST: the body is not JSON, form or multipart, or not an object.", ()),
    "401": ("UNAUTHORIZED (no valid X-API-Key), or API_ERROR: InstaMsg refused the token.", ()),
    "404": ("UNKNOWN_BLOCK, or API_ERROR: InstaMsg has no such resource.", ()),
    "409": ("IDEMPOTENCY_KEY_IN_USE: the first call with this Idempotency-Key still runs.", ()),
    "413": ("PAYLOAD_TOO_LARGE: the body (or a file) is over the limit.", ()),
    "422": ("REQUIRED_FIELDS, INVALID_FIELDS or IDEMPOTENCY_KEY_REUSED.", ()),
    "429": ("API_ERROR: InstaMsg limits the rate; wait for Retry-After.", ("Retry-After",)),
    "502": (
        "API_ERROR for an InstaMsg 5xx, UPSTREAM_UNAVAILABLE, or OUTCOME_UNKNOWN: a call with "
        "an Idempotency-Key may have run; check, then send with a new key.",
        (),
    ),
    "503": (
        "IDEMPOTENCY_UNAVAILABLE: the Idempotency-Key store cannot be written; nothing was "
        "sent. Retry after Retry-After.",
        ("Retry-After",),
    ),
    "504": ("UPSTREAM_TIMEOUT: InstaMsg did not answer in time.", ()),
    "default": ("Any other error, such as API_ERROR with InstaMsg's own 4xx status.", ()),
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


def error_response(description, *extra_headers, example=None) -> dict:
    media = {"schema": ERROR_REF}
    if example is not None:
        media["example"] = example
    return {
        "description": description,
        "headers": headers("X-Request-Id", *extra_headers),
        "content": {"application/json": media},
    }


def result_ref(blk) -> dict:
    schema, many = result_of(blk)
    ref = {"$ref": f"#/components/schemas/{result_name(schema)}"}
    return {"type": "array", "items": ref} if many else ref


def result_name(schema) -> str:
    return schema.__name__


def success_schema(blk) -> dict:
    return {
        "type": "object",
        "description": f"{blk.name} succeeded: its result under contextWrites.to.",
        "required": ["callback", "contextWrites"],
        "properties": {
            "callback": {"type": "string", "enum": ["success"]},
            "contextWrites": {
                "type": "object",
                "description": "The result under to (or under the key the call gave as to).",
                "properties": {"to": result_ref(blk)},
            },
            "warnings": WARNINGS,
        },
    }


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Up to 255 characters, on blocks that change something (reads ignore it). "
    "The call reaches InstaMsg at most once: a repeated call with the same key and arguments "
    "answers what the first answered (Idempotent-Replayed: true); OUTCOME_UNKNOWN means it "
    "may have run: check, then use a new key.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _operation(blk) -> dict:
    args_ref = {"$ref": f"#/components/schemas/{blk.schema.__name__}"}
    form_ref = {"$ref": f"#/components/schemas/{blk.schema.__name__}Form"}
    form_type = (
        "multipart/form-data" if blk.body == "multipart" else "application/x-www-form-urlencoded"
    )
    success = {"application/json": {"schema": {"$ref": f"#/components/schemas/{blk.name}Success"}}}
    ok_headers = ["X-Request-Id", "Idempotent-Replayed"]
    operation = {
        "operationId": blk.name,
        "summary": blk.description,
        "description": RAPID_NOTE.replace("{name}", blk.name),
        "x-rapidapi": {"path": f"/api/InstaMsg/{blk.name}", "status": 200},
        "tags": [tag_of(blk)],
        "parameters": [IDEMPOTENCY_KEY],
        "requestBody": {
            "required": True,
            "description": "The arguments, as JSON (typed values) or as form fields (text). "
            "Each content type has its own schema, so nested JSON is never form-encoded.",
            "content": {
                "application/json": {"schema": args_ref},
                form_type: {"schema": form_ref},
            },
        },
        "responses": {},
    }
    if blk.streamable:
        operation["parameters"] = [
            IDEMPOTENCY_KEY,
            {
                "name": "stream",
                "in": "query",
                "required": False,
                "description": "1 answers the raw bytes instead of base64 in JSON.",
                "schema": {"type": "string", "enum": ["0", "1"]},
            },
        ]
        success["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
        ok_headers.append("Content-Disposition")
    operation["responses"]["200"] = {
        "description": "The block's result, under contextWrites.to.",
        "headers": headers(*ok_headers),
        "content": success,
    }
    for status, (description, extra) in ERROR_STATUSES.items():
        example = refusal_example(blk) if status == "422" else None
        operation["responses"][status] = error_response(description, *extra, example=example)
    return operation


def _describe_operation(blk) -> dict:
    return {
        "operationId": f"{blk.name}Manifest",
        "summary": f"The manifest entry of {blk.name}: its description, arguments and outputs.",
        "tags": ["catalogue"],
        "responses": {
            "200": {
                "description": "name, description, tag, args, rules, outputs, callbacks",
                "headers": headers("X-Request-Id"),
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/BlockEntry"}}
                },
            },
            "405": error_response("Arguments in the query of a GET: POST runs a block.", "Allow"),
            "default": error_response("An error envelope (401 without a valid X-API-Key)."),
        },
    }


BLOCK_ENTRY = {
    "type": "object",
    "required": ["name", "description", "args"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "tag": {"type": "string"},
        "args": {"type": "array", "items": {"type": "object"}},
        "oneOf": {
            "type": "array",
            "description": "Rules: each a list of groups of argument names, one group to give.",
            "items": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "string"}},
            },
        },
        "atLeastOne": {"type": "array", "items": {"type": "string"}},
        "outputs": {"type": "object"},
        "callbacks": {"type": "array", "items": {"type": "object"}},
    },
}


def _get(operation_id, summary, content, *, tag="catalogue", extra=None) -> dict:
    responses = {
        "200": {"description": summary, "headers": headers("X-Request-Id"), "content": content},
        **(extra or {}),
        "default": error_response("An error envelope (401 without a valid X-API-Key)."),
    }
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "tags": [tag],
            "responses": responses,
        }
    }


def _json(schema) -> dict:
    return {"application/json": {"schema": schema}}


def catalogue_paths() -> dict:
    entry = {"$ref": "#/components/schemas/BlockEntry"}
    manifest_schema = {
        "type": "object",
        "required": ["package", "blocks"],
        "properties": {"package": {"type": "string"}, "blocks": {"type": "array", "items": entry}},
    }
    status = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }
    return {
        "/": _get(
            "playground",
            "The playground page: try any block in a browser.",
            {"text/html": {"schema": {"type": "string"}}},
        ),
        "/blocks": _get(
            "listBlocks",
            "Every block: name, description, args, as in the manifest.",
            _json({"type": "array", "items": entry}),
        ),
        "/manifest.json": _get("manifest", "The whole manifest.", _json(manifest_schema)),
        "/api/InstaMsg": _get(
            "manifestRapid",
            "The whole manifest, at the RapidAPI package's address.",
            _json(manifest_schema),
        ),
        "/openapi.json": _get("openapi", "This document.", _json({"type": "object"})),
        "/healthz": _get("healthz", 'Liveness: {"status": "ok"}.', _json(status)),
        "/readyz": _get(
            "readyz",
            "Readiness: 200 when the stores answer (Redis or the SQLite file).",
            _json(status),
            extra={
                "503": {
                    "description": "A store does not answer; the body names it.",
                    "headers": headers("X-Request-Id"),
                    "content": _json(status),
                }
            },
        ),
        "/metrics": _get(
            "metrics",
            "Prometheus text format, summed over workers (same API-key rule as the blocks).",
            {"text/plain": {"schema": {"type": "string"}}},
        ),
    }


RAPID_NOTE = (
    "The same block runs at POST /api/InstaMsg/{name} (RapidAPI-compatible): the same body "
    '({"args": {...}, "to": "key"} or the arguments) and envelope, always HTTP 200.'
)


def rapid_path() -> dict:
    """The RapidAPI-compatible twin. It answers 200 to everything, a refusal included, so its
    request is documented loosely: a stricter schema would promise a 4xx it never sends."""
    body = {
        "type": "object",
        "description": '{"args": {...}, "to": "key"} (the RapidAPI package form), or the '
        "arguments themselves; see /blocks/{name} for each block's arguments.",
    }
    fields_any = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "post": {
            "operationId": "runBlockRapid",
            "summary": "Runs a block, RapidAPI-compatible: the same envelope as /blocks/{name}, "
            "always with HTTP 200 (callback says success or error).",
            "tags": ["rapidapi"],
            "parameters": [
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "description": "The block's name (InstaMsg.name is accepted too): "
                    + ", ".join(REGISTRY.names())
                    + ".",
                    "schema": {"type": "string"},
                },
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": IDEMPOTENCY_KEY["description"],
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {"schema": body},
                    "application/x-www-form-urlencoded": {"schema": fields_any},
                    "multipart/form-data": {"schema": fields_any},
                },
            },
            "responses": {
                "200": {
                    "description": "The envelope, success or error.",
                    "headers": headers("X-Request-Id", "Idempotent-Replayed", "Retry-After"),
                    "content": _json(
                        {
                            "oneOf": [
                                {"$ref": "#/components/schemas/SuccessEnvelope"},
                                ERROR_REF,
                            ]
                        }
                    ),
                }
            },
        }
    }


def build_openapi() -> dict:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="InstaMsg connector",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[plugin],
        info={"description": PACKAGE["description"]},
        servers=[
            {"url": "/", "description": "The connector serving this document."},
            {"url": "http://localhost:8080", "description": "make run (sandbox mode)."},
        ],
        tags=[{"name": name, "description": info} for name, info in TAG_INFO.items()],
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
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    spec.components.schema("SuccessEnvelope", SUCCESS_ENVELOPE)
    spec.components.schema("ErrorBody", ERROR_BODY)
    spec.components.schema("ErrorEnvelope", ERROR_ENVELOPE)
    spec.components.schema("BlockEntry", BLOCK_ENTRY)
    for blk in REGISTRY:
        name = blk.schema.__name__
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=blk.schema)
            spec.components.schema(name + "Form", form_schema(blk))
        result, _ = result_of(blk)
        if result_name(result) not in spec.components.schemas:
            spec.components.schema(result_name(result), schema=result)
        spec.components.schema(f"{blk.name}Success", success_schema(blk))
        spec.path(
            path=f"/blocks/{blk.name}",
            operations={"post": _operation(blk), "get": _describe_operation(blk)},
        )
    # The RapidAPI twin answers a wrong method with 405 like the rest, so it is a path of its
    # own (schemathesis checks that a documented path refuses undocumented methods).
    spec.path(path="/api/InstaMsg/{name}", operations=rapid_path())
    for path, item in catalogue_paths().items():
        spec.path(path=path, operations=item)
    document = spec.to_dict()
    # The key is needed only where the operator set CONNECTOR_API_KEYS: none, or the key.
    document["security"] = [{}, {"apiKey": []}]
    schemas = document["components"]["schemas"]
    for blk in REGISTRY:
        schema = schemas[blk.schema.__name__]
        rules = rules_text(blk)
        if rules:
            # Prose and x- keys, never a schema-level anyOf: generators keep the model.
            schema["description"] = rules
        if blk.loader.one_of:
            schema["x-oneOf"] = one_of_names(blk)
        if blk.loader.at_least_one:
            schema["x-atLeastOne"] = field_names(blk, blk.loader.at_least_one)
    return document


# -- sample outputs, from the sandbox -----------------------------------------------------


def record_samples() -> dict:
    """Run every block once against the sandbox; what each answered, by block name."""
    import tempfile

    from app import create_app

    with tempfile.TemporaryDirectory() as data_dir:
        client = create_app({"sandbox": True, "data_dir": data_dir}).test_client()
        answers: dict = {}

        def call(block, /, **args):
            reply = client.post(f"/blocks/{block}", json=args)
            result = reply.get_json()["contextWrites"]["to"]
            if reply.status_code != 200:
                raise RuntimeError(f"{block}: {result['status_msg']}")
            answers[block] = result[:1] if isinstance(result, list) else result
            return result

        app = {"clientKey": "demo-key", "clientSecret": "demo-secret"}
        token = call("getAccessToken", **app)["access_token"]
        auth = {"accessToken": token}
        tenant = call("createTenant", **auth, name="Company 1", maxClients=10, maxMessages=10000)
        call("getTenants", **auth)
        call("getSingleTenant", **auth, id=tenant["id"])
        call("updateTenant", **auth, id=tenant["id"], description="Sensors of the north farm")
        made = call(
            "createClient",
            **auth,
            tenantId=tenant["id"],
            type="device",
            name="pump-7",
            provisioningId="356938035643809",
            pubTopics=["pub1"],
            subTopics=["sub1"],
        )
        user = call(
            "createClient",
            **auth,
            tenantId=tenant["id"],
            type="user",
            name="ops",
            provisioningId="ops-1",
        )
        one = {**auth, "tenantId": tenant["id"], "clientId": made["id"]}
        published = call(
            "publishMessage", **one, id=1, type="pub", topic="pub1", payload="21.5", qos=2
        )
        call("releaseMessage", **one, messageId=published["messageId"])
        call("getClients", **auth, tenantId=tenant["id"])
        for name in (
            "getSingleClient",
            "getClientInfo",
            "getClientNetworkLogs",
            "getClientSessions",
            "getClientMetrics",
            "getClientLogs",
            "updateClientAuthToken",
            "updateClientCertificate",
            "getMessages",
        ):
            call(name, **one)
        call("getClientAuthToken", **auth, tenantId=tenant["id"], clientId=user["id"])
        call("updateClient", **one, description="Water pump")
        call("uploadFile", **one, filename="firmware.bin", fileContent="aGVsbG8=")
        call("getFiles", **one)
        call("downloadFile", **one, filename="firmware.bin")
        call("deleteFile", **one, filename="firmware.bin")
        call("updateClientConfig", **one, config={"PING_REQ_INTERVAL": 180})
        call("getClientConfig", **one)
        call("deleteClientConfig", **one)
        call("deleteClient", **auth, tenantId=tenant["id"], clientId=user["id"])
        call(
            "deleteTenant",
            **auth,
            id=call("createTenant", **auth, name="x", maxClients=0, maxMessages=0)["id"],
        )
        call("invalidateAccessToken", **app, token=token)
    return {blk.name: answers[blk.name] for blk in REGISTRY}


@lru_cache(maxsize=1)
def manifest() -> dict:
    return build_manifest()


@lru_cache(maxsize=1)
def openapi() -> dict:
    return build_openapi()


def render(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _limits(arg: dict) -> str:
    parts = []
    if "options" in arg:
        parts.append("one of " + ", ".join(f"`{o}`" for o in arg["options"]))
    for key, label in (("minimum", "min"), ("maximum", "max"), ("default", "default")):
        if key in arg:
            parts.append(f"{label} `{json.dumps(arg[key])}`")
    return "; ".join(parts)


def blocks_markdown(document: dict) -> str:
    """docs/blocks.md: every block, its arguments and its result, from the manifest."""
    lines = [
        "# Blocks",
        "",
        "Generated from the schemas by `make manifest` (do not edit; a test checks it is fresh).",
        "Every block runs with `POST /blocks/<name>`; see the README for bodies and envelopes.",
        "",
    ]
    by_tag: dict[str, list] = {}
    for blk in document["blocks"]:
        by_tag.setdefault(blk.get("tag", "other"), []).append(blk)
    for tag, blks in by_tag.items():
        lines += [
            f"- **{tag}**: " + ", ".join(f"[{b['name']}](#{b['name'].lower()})" for b in blks)
        ]
    for blk in document["blocks"]:
        lines += ["", f"## {blk['name']}", "", blk["description"]]
        rules = [
            "Give " + ", or ".join(" and ".join(f"`{n}`" for n in g) for g in group) + "."
            for group in blk.get("oneOf") or []
        ]
        if blk.get("atLeastOne"):
            rules.append(
                "Give at least one of: " + ", ".join(f"`{n}`" for n in blk["atLeastOne"]) + "."
            )
        if rules:
            lines += ["", *rules]
        lines += [
            "",
            "| argument | type | required | allowed | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for arg in blk["args"]:
            lines.append(
                f"| `{arg['name']}` | {arg['type']} | {'yes' if arg.get('required') else 'no'} "
                f"| {_cell(_limits(arg))} | {_cell(arg.get('info', ''))} |"
            )
        outputs = blk.get("outputs") or {}
        if outputs.get("fields"):
            kind = "a list of objects with" if outputs.get("type") == "array" else "an object with"
            lines += ["", f"Answers, under `contextWrites.{outputs.get('key', 'to')}`, {kind}:", ""]
            lines += ["| field | type | sample | description |", "| --- | --- | --- | --- |"]
            for out in outputs["fields"]:
                sample = json.dumps(out.get("sample"), ensure_ascii=False)
                lines.append(
                    f"| `{out['name']}` | {out.get('type', '')} | `{_cell(sample)[:60]}` "
                    f"| {_cell(out.get('info', ''))} |"
                )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import blocks  # noqa: F401  (registers every block)

    argv = sys.argv[1:] if argv is None else argv
    if "--record-samples" in argv:
        SAMPLES_FILE.write_text(render(record_samples()))
        samples.cache_clear()
        print(f"wrote {SAMPLES_FILE.relative_to(ROOT)}")
    document = build_manifest()
    outputs = {
        MANIFEST_FILE: render(document),
        OPENAPI_FILE: render(build_openapi()),
        BLOCKS_DOC: blocks_markdown(document),
    }
    if "--check" in argv:
        stale = [p.name for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("stale: " + ", ".join(stale) + " (run: make manifest)", file=sys.stderr)
            return 1
        print("manifest.json, openapi.json and docs/blocks.md are up to date")
        return 0
    for path, text in outputs.items():
        path.write_text(text)
        print(f"wrote {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
