"""A block's MCP ``inputSchema`` and ``outputSchema``, from the OpenAPI document.

The OpenAPI document (connector/generate/openapi.py's ``openapi()``) already holds each block's
argument schema and its typed result as components; MCP wants plain JSON Schema (Draft
2020-12) with nothing to look up elsewhere. ``portable()`` rewrites an OpenAPI 3.0 schema
object into that:

* ``$ref`` into ``#/components/schemas`` is inlined (``allOf`` around a lone ``$ref``, the
  way apispec wraps a described nested schema, collapses into the schema itself);
* ``nullable: true`` becomes ``anyOf`` the schema and ``{"type": "null"}`` (said on the
  schema, or on each of its ``anyOf`` forms);
* an empty schema (anything) under ``additionalProperties`` becomes ``true``, and under
  ``items`` is left out;
* ``example`` becomes ``examples: [example]`` (2020-12 has no ``example``);
* vendor keys (``x-secret``, ``x-oneOf``, ``x-unit``...) are dropped: the rules they
  carry are already in the schema's ``description``, which the agent reads.

Results keep whatever InstaMsg adds (schemas/results.py: "more fields than listed may
come"), and the SDK's client checks every result against ``outputSchema``, so an output
schema never says ``additionalProperties: false``. A list result is an object too: the
list under ``items``.
"""

from __future__ import annotations

import copy

from connector.engine.idempotency_keys import MAX_KEY
from connector.generate import manifest, openapi

#: The OpenAPI 3.0 keywords that mean nothing (or something else) in JSON Schema 2020-12.
OPENAPI_ONLY = frozenset({"nullable", "example", "discriminator", "xml", "externalDocs"})
COMPONENTS = "#/components/schemas/"


def portable(schema, components: dict, *, closed: bool = True):
    """``schema`` (an OpenAPI schema object) as self-contained JSON Schema 2020-12.
    ``closed=False`` drops ``additionalProperties: false`` wherever it is."""
    if isinstance(schema, list):
        return [portable(item, components, closed=closed) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith(COMPONENTS):
            raise ValueError(f"cannot inline {ref!r}: only {COMPONENTS}* is known")
        merged = {**components[ref.removeprefix(COMPONENTS)], **without(schema, "$ref")}
        return portable(merged, components, closed=closed)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        return portable({**all_of[0], **without(schema, "allOf")}, components, closed=closed)
    if nullable_forms(schema):  # OpenAPI 3.0 says it on each form; one null branch says it
        forms = [without(form, "nullable") for form in schema["anyOf"]]
        return portable({**schema, "anyOf": forms, "nullable": True}, components, closed=closed)
    out = {}
    for key, value in schema.items():
        if key in OPENAPI_ONLY or key.startswith("x-"):
            continue
        if key == "additionalProperties" and value is False and not closed:
            continue
        if key in ("properties", "patternProperties", "$defs"):
            out[key] = {
                name: portable(sub, components, closed=closed) for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties") and value == {}:
            # "anything": true says it plainly, and an array's items are anything unless
            # ``items`` says otherwise (the Inspector's --strict flags a bare {}).
            if key == "additionalProperties":
                out[key] = True
        elif key in ("items", "additionalProperties", "not", "anyOf", "oneOf", "allOf"):
            out[key] = portable(value, components, closed=closed)
        else:
            out[key] = copy.deepcopy(value)
    if "example" in schema and "examples" not in schema:
        out["examples"] = [copy.deepcopy(schema["example"])]
    if schema.get("nullable") is True:
        out = nullable(out)
    return out


def nullable_forms(schema: dict) -> bool:
    """``schema`` is several forms (``anyOf``), each of them nullable."""
    forms = schema.get("anyOf")
    return (
        isinstance(forms, list)
        and bool(forms)
        and all(isinstance(form, dict) and form.get("nullable") is True for form in forms)
    )


def without(schema: dict, key: str) -> dict:
    return {k: v for k, v in schema.items() if k != key}


def nullable(schema: dict) -> dict:
    """``schema``, accepting null as well: ``anyOf`` its own branch (or branches) and
    ``{"type": "null"}``. Not ``"type": [..., "null"]``: legal, but clients that map tool
    schemas onto a one-type dialect refuse it (the MCP Inspector's --strict says so)."""
    notes = {k: v for k, v in schema.items() if k in ANNOTATIONS}
    rest = {k: v for k, v in schema.items() if k not in ANNOTATIONS}
    if not rest:
        return schema  # it accepts anything already
    branches = rest["anyOf"] if list(rest) == ["anyOf"] else [rest]
    if {"type": "null"} not in branches:
        branches = [*branches, {"type": "null"}]
    return {**notes, "anyOf": branches}


#: Keywords that describe a schema without constraining it: they stay outside its branches.
ANNOTATIONS = frozenset(
    {"title", "description", "examples", "default", "readOnly", "writeOnly", "deprecated"}
)


#: The app's credentials: arguments of every block, left out when the server holds them.
CREDENTIALS = ("clientKey", "clientSecret")
HELD_TOKEN = (
    "Leave it out: this server holds the app's credentials, and the connector gets and "
    "renews access tokens itself. Or give an access token from getAccessToken "
    '(access_token in its result), without a "Bearer " prefix.'
)


def input_schema(blk, document: dict | None = None, *, held: bool = False) -> dict:
    """The block's arguments: its OpenAPI request schema (application/json), made portable.
    Arguments are checked by the connector when the block runs, not by this schema.
    ``held``: the server holds the app's credentials, so they are no arguments here."""
    document = document or openapi.openapi()
    components = document["components"]["schemas"]
    request = document["paths"][f"/blocks/{blk.name}"]["post"]["requestBody"]
    schema = portable(request["content"]["application/json"]["schema"], components)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    if held:
        for name in CREDENTIALS:
            schema["properties"].pop(name, None)
        required = [name for name in schema.get("required", []) if name not in CREDENTIALS]
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        token = schema["properties"].get("accessToken")
        if token is not None:
            token["description"] = HELD_TOKEN
    if blk.keyed:  # a read (or getAccessToken) ignores keys
        schema["properties"][KEY_ARGUMENT] = key_schema()
    # The OpenAPI wording points at its x- keys and at HTTP statuses; say the rules plainly.
    schema.pop("description", None)
    text = rules(blk, held=held)
    if text:
        schema["description"] = text
    return schema


#: The tool argument an Idempotency-Key is given in (not a block argument: the server takes
#: it out and passes it to the engine, or over --url as the Idempotency-Key header).
KEY_ARGUMENT = "idempotencyKey"


def key_schema() -> dict:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY,
        "description": (
            "Optional, recommended when you may retry. A unique string you choose for this "
            "intended call (a UUID, say). If the call fails or times out and you retry it, "
            "give the SAME key with the same arguments: it then reaches InstaMsg at most "
            "once, and a retry of one that succeeded answers the first answer again "
            "(_meta.idempotentReplayed). Use a NEW key for a new call; the same key with "
            "other arguments is refused (IDEMPOTENCY_KEY_REUSED). OUTCOME_UNKNOWN means the "
            "call may or may not have happened: check (getMessages...) before a new key."
        ),
    }


def rules(blk, *, held: bool = False) -> str:
    """The block's argument rules (one group of several; at least one of) as sentences;
    with ``held`` credentials, the choice of a token or the credentials is no rule."""
    sentences = []
    for rule in blk.loader.one_of:
        if held and any(CREDENTIALS[0] in manifest.field_names(blk, group) for group in rule):
            continue
        groups = [" and ".join(manifest.field_names(blk, group)) for group in rule]
        sentences.append("Give " + ", or ".join(groups) + ".")
    if blk.loader.at_least_one:
        names = manifest.field_names(blk, blk.loader.at_least_one)
        sentences.append("Give at least one of: " + ", ".join(names) + ".")
    return " ".join(sentences)


def output_schema(blk, document: dict | None = None) -> dict:
    """The block's typed result (what its success answers under ``contextWrites.to``) as an
    object: a list result sits under ``items``."""
    document = document or openapi.openapi()
    components = document["components"]["schemas"]
    success = document["components"]["schemas"][f"{blk.name}Success"]
    result = portable(
        success["properties"]["contextWrites"]["properties"]["to"], components, closed=False
    )
    if result.get("type") == "object":
        return result
    return {
        "type": "object",
        "description": f"What {blk.name} answers: the list under items.",
        "properties": {"items": result},
        "required": ["items"],
    }
