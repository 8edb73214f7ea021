"""openapi.json: the HTTP face described for generators and validators, from the same
schemas as the manifest (apispec's marshmallow plugin, with our field types' own fragments),
the envelopes declared in schemas/envelopes.py and the error classes' own statuses."""

from __future__ import annotations

import json
from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from connector import __version__
from connector.engine.idempotency_keys import MAX_KEY
from connector.engine.invocation import REQUEST_ID
from connector.engine.registry import REGISTRY
from connector.errors import ALL as ERRORS
from connector.errors import ApiError, ConnectorError
from connector.generate.manifest import (
    PACKAGE,
    TAG_INFO,
    field_names,
    one_of_names,
    result_of,
    tag_of,
)
from connector.upstream.outcomes import STATUS_RULES
from schemas import envelopes
from schemas.fields import ArgField

#: The 4xx statuses of InstaMsg the upstream client names: each passes through as API_ERROR.
INSTAMSG_REFUSALS = sorted(int(s) for s in STATUS_RULES if 400 <= s < 500)


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
        # null, like "", counts as not given. OpenAPI 3.0's nullable qualifies a sibling
        # type, so a field of several forms says it on each of them.
        if "anyOf" in extra:
            extra["anyOf"] = [{**form, "nullable": True} for form in extra["anyOf"]]
        else:
            extra["nullable"] = True
    return extra


def nullable_on_forms(converter, field, ret, **kwargs) -> dict:
    """OpenAPI 3.0's nullable qualifies a sibling type: a property of several forms
    (``anyOf``, such as a result's) says it on each of them, never beside them."""
    if "anyOf" in ret and ret.pop("nullable", False):
        return {"anyOf": [{**form, "nullable": True} for form in ret["anyOf"]]}
    return {}


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
        body = {**error.to_dict(), "request_id": REQUEST_ID_EXAMPLE}
        return {"callback": "error", "contextWrites": {"to": body}}
    return None


#: The request id the examples show, as the envelope's own schema gives it.
REQUEST_ID_EXAMPLE = envelopes.ErrorBody().fields["request_id"].metadata["example"]


HEADERS = {
    "X-Request-Id": {
        "description": "The caller's X-Request-Id when it matches "
        f"^{REQUEST_ID.pattern}$, else a new one. Error envelopes repeat it as request_id.",
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


#: Statuses whose answers say how long to wait in Retry-After.
RETRY_AFTER_STATUSES = (429, 503)


def error_statuses() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each HTTP status a block call can answer with an error: the codes it carries (from the
    error classes' own statuses; API_ERROR also passes through the InstaMsg 4xx statuses the
    upstream client names) and the headers that come with it."""
    by_status: dict[int, list] = {}
    for error in ERRORS:
        for status in (error.http_status, *getattr(error, "also_answers", ())):
            by_status.setdefault(status, []).append(error)
    for status in INSTAMSG_REFUSALS:
        if ApiError not in by_status.setdefault(status, []):
            by_status[status].append(ApiError)
    statuses = {
        str(status): (
            "; ".join(f"{error.code}: {error.summary}" for error in errors) + ".",
            ("Retry-After",) if status in RETRY_AFTER_STATUSES else (),
        )
        for status, errors in sorted(by_status.items())
    }
    statuses["default"] = (f"API_ERROR with another InstaMsg status: {ApiError.summary}.", ())
    return statuses


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


def success_schema(blk, envelope: dict) -> dict:
    """``envelope`` (the SuccessEnvelope component) with the block's result typed under
    ``contextWrites.to``."""
    schema = json.loads(json.dumps(envelope))
    schema["description"] = (
        f"{blk.name} succeeded: its result under contextWrites.to (under the key the call "
        "named instead, when it gave the to argument)."
    )
    writes = schema["properties"]["contextWrites"]
    writes.pop("additionalProperties", None)
    writes.update({"required": ["to"], "properties": {"to": result_ref(blk)}})
    return schema


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "On blocks that change something (reads ignore it). The call reaches "
    "InstaMsg at most once: a repeated call with the same key and arguments answers what the "
    "first answered (Idempotent-Replayed: true); OUTCOME_UNKNOWN means it may have run: check, "
    "then use a new key.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
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
    for status, (description, extra) in error_statuses().items():
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
                    "schema": IDEMPOTENCY_KEY["schema"],
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
    plugin.converter.add_attribute_function(nullable_on_forms)
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
    spec.components.schema("SuccessEnvelope", schema=envelopes.SuccessEnvelope)
    spec.components.schema("ErrorBody", schema=envelopes.ErrorBody)
    spec.components.schema("ErrorWrites", schema=envelopes.ErrorWrites)
    spec.components.schema("ErrorEnvelope", schema=envelopes.ErrorEnvelope)
    success_envelope = spec.to_dict()["components"]["schemas"]["SuccessEnvelope"]
    spec.components.schema("BlockEntry", BLOCK_ENTRY)
    for blk in REGISTRY:
        name = blk.schema.__name__
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=blk.schema)
            spec.components.schema(name + "Form", form_schema(blk))
        result, _ = result_of(blk)
        if result_name(result) not in spec.components.schemas:
            spec.components.schema(result_name(result), schema=result)
        spec.components.schema(f"{blk.name}Success", success_schema(blk, success_envelope))
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
    # Any key the call named with `to` holds an ErrorBody too (marshmallow's INCLUDE says only
    # "more keys may come").
    writes = document["components"]["schemas"]["ErrorWrites"]
    writes["additionalProperties"] = {"$ref": "#/components/schemas/ErrorBody"}
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


@lru_cache(maxsize=1)
def openapi() -> dict:
    return build_openapi()
