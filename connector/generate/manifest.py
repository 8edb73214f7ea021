"""manifest.json: what flow builders draw their forms from, built from the block registry
(every block's arguments from its schema, its outputs from its result schema and the
samples recorded from the sandbox)."""

from __future__ import annotations

import json
from functools import lru_cache

from marshmallow import Schema, fields

from connector import __version__
from connector.engine.registry import REGISTRY
from connector.generate.samples import recorded
from schemas.fields import TYPES, ArgField

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
    "readOnly": "Whether the block only reads: nothing in InstaMsg changes when it runs "
    "(integrations make it a search or a trigger; every other block an action).",
    "idempotencyKey": "Whether the block takes an Idempotency-Key header: its call then reaches "
    "InstaMsg at most once, and a retry with the same key answers what the first answered. "
    "Reads and getAccessToken ignore keys.",
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
    max_bytes = getattr(field, "max_bytes", None)
    if max_bytes is not None:
        entry["maxBytes"] = max_bytes
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
    (fields.Raw, "JSON"),
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


def outputs_entry(blk) -> dict:
    schema, many = result_of(blk)
    sample = recorded().get(blk.name)
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
    entry["readOnly"] = blk.read_only
    entry["idempotencyKey"] = blk.keyed
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


@lru_cache(maxsize=1)
def manifest() -> dict:
    return build_manifest()


def render(document: dict) -> str:
    """A generated JSON document as committed: indented, UTF-8, one newline at the end."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
