"""The n8n community node package (integrations/n8n/), built from the manifest.

``files(manifest)`` maps each path under integrations/n8n/ to its text. What depends on the
blocks (the node's parameters, the operations, the credential fields, package.json) is generated
here; the JavaScript that runs them is kept, hand-written, in connector/generate/n8n_package/ and
copied as it is, so that the committed package loads in n8n with no build step.

``python -m connector.generate.n8n`` writes the package; ``--check`` fails when it is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from connector.events.kinds import DEFAULT_EVENT, FILTER_FIELDS, KINDS
from connector.generate.names import (
    ACRONYMS,
    action_name,
    display_name,
    option_labels,
    option_name,  # noqa: F401  (the generators' one rule, used by the tests from here too)
    words,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_FILE = ROOT / "manifest.json"
TARGET = ROOT / "integrations" / "n8n"
TEMPLATES = Path(__file__).resolve().parent / "n8n_package"

PACKAGE_NAME = "n8n-nodes-instamsg"
CREDENTIAL = "instaMsgApi"
NODE = "InstaMsg"
TRIGGER = "InstaMsgTrigger"
# The webhook-based trigger: the connector pushes each new message, client or file (README,
# "Instant triggers"); its Event options are the events' table (connector/events/kinds.py).
INSTANT = "InstaMsgInstantTrigger"
# The arguments the credentials stand in for: no operation shows them, and the node sends the
# credentials' own with every call, so the connector gets and renews the tokens itself.
APP_CREDENTIALS = ("clientKey", "clientSecret")
TOKEN = "accessToken"
SIGN_IN = (TOKEN, *APP_CREDENTIALS)
# Blocks left out of the node: tokens are the connector's business (the credential test gets one).
MANAGED_TAGS = ("token",)
# The block the credential test runs: a real call with the credential's URL, key and app.
CREDENTIAL_TEST_BLOCK = "getAccessToken"

# Where the connector's own documents are published (the node's and the credential's Docs link).
# The node's has no #fragment: n8n's editor rebuilds that link with its own query and drops one.
DOCS_URL = "https://github.com/instamsg/instamsg-connector/blob/main/docs/integrations.md"
CREDENTIAL_DOCS_URL = DOCS_URL + "#n8n-credentials"
# What n8n's node search matches besides the name (it reads the codex's alias, not npm keywords).
ALIASES = ["IoT", "MQTT", "device", "telemetry", "sensor", "message"]
CATEGORIES = ["Communication", "Development"]

# Arguments picked From List in the form (n8n's resource locator), by (tag or "*", argument):
# the list search method of lib/instamsg.js that lists them.
LOCATORS = {
    ("*", "tenantId"): "searchTenants",
    ("*", "clientId"): "searchClients",
    ("tenants", "id"): "searchTenants",
}

# Required arguments the node fills itself when left out, by (block, argument): publishMessage's
# id is a number of the caller's that nobody should have to invent. The node takes it from the
# call's Idempotency Key (lib/instamsg.js, numberFromKey), so that a retry sends the same.
NODE_CHOSEN = {("publishMessage", "id")}

# How many items a list operation puts out unless Return All is on.
LIMIT_DEFAULT = 50

# Verbs whose action reads with an article, as n8n's own nodes write them ("Create a channel").
ARTICLE_VERBS = frozenset(
    {"create", "update", "delete", "publish", "release", "upload", "download"}
)
# The binary property a File argument reads, and downloadFile's file is written to.
BINARY_PROPERTY = "data"

# The collection of rarely used settings of an operation that changes something, and the
# Idempotency-Key parameter in it.
OPTIONS = "options"
KEY_PARAMETER = "idempotencyKey"
KEY_DESCRIPTION = (
    "Sent as the Idempotency-Key header: under one key the connector sends this call to "
    "InstaMsg at most once, however often it is retried, and a retry of one that succeeded "
    "gets the first answer again, with idempotentReplayed: true on the item. Left out, the "
    "node sends a key of its own, made of this n8n process, the execution, the node, its run "
    "and the item, so "
    "that Retry On Fail never sends a call twice. Set one built from the item's own data (an "
    "order or reading ID) to hold across re-runs of the workflow too. The same key with other "
    "arguments is refused (IDEMPOTENCY_KEY_REUSED); OUTCOME_UNKNOWN fails the node: check "
    "whether the call happened before sending it again under a new key."
)


def load_manifest() -> dict:
    return json.loads(MANIFEST_FILE.read_text())


def node_blocks(manifest: dict) -> list[dict]:
    """The blocks the node offers: all but those whose calls the connector makes itself."""
    return [b for b in manifest["blocks"] if b["tag"] not in MANAGED_TAGS]


def is_list(block: dict) -> bool:
    return (block.get("outputs") or {}).get("type") == "list"


def operation_names(block: dict) -> tuple[str, str]:
    """An operation's name in the form and its action in the node panel, by n8n's convention:
    ``Get Many Tenants`` / ``Get many tenants``, ``Create Tenant`` / ``Create a tenant``."""
    parts = words(block["name"])
    verb, rest = parts[0].lower(), parts[1:]
    single = rest[:1] == ["Single"]
    if single:
        rest = rest[1:]
    noun = " ".join(ACRONYMS.get(w.lower(), w.lower()) for w in rest)
    title = display_name("".join(rest))
    if verb == "get" and is_list(block):
        return f"Get Many {title}", f"Get many {noun}"
    if single:
        return f"Get {title}", f"Get a {noun}"
    if verb in ARTICLE_VERBS:
        return display_name(block["name"]), f"{verb.capitalize()} a {noun}"
    return display_name(block["name"]), action_name(block["name"])


# -- the node's parameters ------------------------------------------------------------------------


def located(block: dict, arg: dict) -> dict:
    """The argument, marked with its list search when the form picks it from a list."""
    method = LOCATORS.get((block["tag"], arg["name"])) or LOCATORS.get(("*", arg["name"]))
    return {**arg, "locator": method} if method else arg


def kind_of(arg: dict) -> str:
    """How the node takes and sends an argument (the runtime's switch, lib/instamsg.js)."""
    kind = arg["type"]
    if arg.get("locator"):
        return "locator"
    if kind == "File":
        return "file"
    if kind == "credentials":
        return "secret"
    if "options" in arg:
        return "options"
    return {
        "Number": "number",
        "Boolean": "boolean",
        "Datepicker": "dateTime",
        "List": "list",
        "JSON": "json",
        "Array": "json",
        "Map": "json",
    }.get(kind, "string")


def parameter(arg: dict, *, in_collection: bool) -> dict:
    """One n8n parameter for one manifest argument, named exactly as the argument."""
    name, kind = arg["name"], kind_of(arg)
    param: dict = {"displayName": display_name(name), "name": name}
    info = arg.get("info", "")
    if kind == "locator":
        # As n8n's own nodes pick a record (Airtable's Base): From List, searchable, or By ID.
        # Named for what is picked (searchTenants -> Tenant), as n8n names its locators.
        param["displayName"] = arg["locator"].removeprefix("search").removesuffix("s")
        param["type"] = "resourceLocator"
        param["default"] = {"mode": "list", "value": ""}
        param["modes"] = [
            {
                "displayName": "From List",
                "name": "list",
                "type": "list",
                "typeOptions": {"searchListMethod": arg["locator"], "searchable": True},
            },
            {
                "displayName": "By ID",
                "name": "id",
                "type": "string",
                "placeholder": f"e.g. {arg.get('example', '')}",
            },
        ]
    elif kind == "options":
        options = arg["options"]
        param["type"] = "options"
        param["options"] = [
            {"name": name, "value": o} for o, name in zip(options, option_labels(arg), strict=True)
        ]
        param["default"] = arg.get("default", options[0])
    elif kind == "number":
        param["type"] = "number"
        limits = {"minValue": arg.get("minimum"), "maxValue": arg.get("maximum")}
        limits = {key: value for key, value in limits.items() if value is not None}
        if limits:
            param["typeOptions"] = limits
        # A required number starts at its example (Max Clients 10), so that the form as it
        # comes makes a valid call; an optional one at its default or lowest value.
        fallback = arg.get("example") if arg.get("required") else None
        param["default"] = arg.get(
            "default", fallback if fallback is not None else arg.get("minimum", 0)
        )
    elif kind == "boolean":
        param["type"] = "boolean"
        param["default"] = arg.get("default", False)
    elif kind == "dateTime":
        param["type"] = "dateTime"
        param["default"] = arg.get("default", "")
    elif kind == "list":
        param["type"] = "string"
        param["typeOptions"] = {
            "multipleValues": True,
            "multipleValueButtonText": "Add " + display_name(name).rstrip("s"),
        }
        param["default"] = arg.get("default", [])
    elif kind == "json":
        param["type"] = "json"
        param["default"] = json.dumps(arg["default"]) if "default" in arg else ""
    elif kind == "file":
        param["displayName"] = display_name(name) + " (Input Binary Field)"
        param["type"] = "string"
        param["default"] = BINARY_PROPERTY
        info = (
            "The name of the input item's binary field holding the file; it is sent as the "
            f"file's bytes. Left empty, {name} is not sent. ({info})"
        )
    else:
        param["type"] = "string"
        if kind == "secret":
            param["typeOptions"] = {"password": True}
        param["default"] = arg.get("default", "")
    if arg.get("example") is not None and kind in ("string", "list", "json"):
        example = arg["example"]
        param["placeholder"] = example if isinstance(example, str) else json.dumps(example)
    param["description"] = info
    if arg.get("required") and not in_collection:
        param["required"] = True
    return param


def split_arguments(block: dict) -> tuple[list[dict], list[dict]]:
    """The block's arguments shown as their own parameters, and those in its collection.

    Required arguments and the alternatives of a rule other than the token's (uploadFile's
    fileContent or file) are parameters of their own; the optional ones sit in a collection,
    so that only what the user adds is sent. The sign-in arguments are neither: the node's
    credentials stand in for them."""
    alternatives = {
        name
        for rule in block.get("oneOf") or []
        if [TOKEN] not in rule
        for group in rule
        for name in group
    }
    own, optional = [], []
    for arg in (located(block, a) for a in block["args"]):
        name = arg["name"]
        if name in SIGN_IN:
            continue
        if (block["name"], name) in NODE_CHOSEN:
            optional.append({**arg, "info": arg["info"] + CHOSEN_NOTE})
        elif arg.get("required") or name in alternatives:
            own.append(arg)
        else:
            optional.append(arg)
    return own, optional


CHOSEN_NOTE = (
    " Left out, the node picks one from the call's Idempotency Key, so that a retry of the "
    "item sends the same."
)


def collection_name(block: dict) -> str:
    return "updateFields" if block.get("atLeastOne") else "additionalFields"


def returns_file(block: dict) -> bool:
    fields = {f["name"] for f in (block.get("outputs") or {}).get("fields", [])}
    return {"filename", "contentType", "content"} <= fields


def alternatives_of(block: dict, name: str) -> list[str]:
    """The arguments that may stand in for ``name`` (the other groups of its oneOf rule)."""
    for rule in block.get("oneOf") or []:
        if any(name in group for group in rule):
            return [other for group in rule if name not in group for other in group]
    return []


def operation_spec(block: dict) -> dict:
    """What the runtime needs to send one block: each argument's kind and where it sits."""
    own, optional = split_arguments(block)
    spec: dict = {
        "label": operation_names(block)[0],
        "arguments": {arg["name"]: kind_of(arg) for arg in own},
        "collection": collection_name(block) if optional else None,
        "collected": {arg["name"]: kind_of(arg) for arg in optional},
        "appCredentials": any(a["name"] in APP_CREDENTIALS for a in block["args"]),
        "keyed": bool(block.get("idempotencyKey")),
        "list": is_list(block),
    }
    chosen = [a["name"] for a in block["args"] if (block["name"], a["name"]) in NODE_CHOSEN]
    if chosen:
        spec["chosen"] = chosen
    files = [a["name"] for a in block["args"] if kind_of(a) == "file"]
    if files:
        spec["fileAlternatives"] = {name: alternatives_of(block, name) for name in files}
    if returns_file(block):
        spec["binaryOutput"] = BINARY_PROPERTY
    return spec


def resources(manifest: dict) -> list[dict]:
    used = {block["tag"] for block in node_blocks(manifest)}
    return [tag for tag in manifest["tags"] if tag["name"] in used]


def node_properties(manifest: dict) -> list[dict]:
    tags = resources(manifest)
    props: list[dict] = [
        {
            "displayName": "Resource",
            "name": "resource",
            "type": "options",
            "noDataExpression": True,
            "options": [
                {"name": display_name(t["name"]), "value": t["name"], "description": t["info"]}
                for t in tags
            ],
            "default": tags[0]["name"],
        }
    ]
    for tag in tags:
        blocks = sorted(
            (b for b in node_blocks(manifest) if b["tag"] == tag["name"]),
            key=lambda b: operation_names(b)[0],
        )
        props.append(
            {
                "displayName": "Operation",
                "name": "operation",
                "type": "options",
                "noDataExpression": True,
                "displayOptions": {"show": {"resource": [tag["name"]]}},
                "options": [
                    {
                        "name": operation_names(b)[0],
                        "value": b["name"],
                        "action": operation_names(b)[1],
                        "description": b["description"],
                    }
                    for b in blocks
                ],
                "default": blocks[0]["name"],
            }
        )
    for block in node_blocks(manifest):
        show = {"show": {"resource": [block["tag"]], "operation": [block["name"]]}}
        own, optional = split_arguments(block)
        for arg in own:
            props.append({**parameter(arg, in_collection=False), "displayOptions": show})
        if is_list(block):
            props.extend(return_all_and_limit(show))
        if optional:
            name = collection_name(block)
            props.append(
                {
                    "displayName": display_name(name),
                    "name": name,
                    "type": "collection",
                    "placeholder": "Add Field",
                    "default": {},
                    "description": (
                        "Give at least one of these."
                        if block.get("atLeastOne")
                        else "Optional arguments: only those added are sent."
                    ),
                    "displayOptions": show,
                    "options": sorted(
                        (parameter(arg, in_collection=True) for arg in optional),
                        key=lambda p: p["displayName"],
                    ),
                }
            )
    keyed = [b["name"] for b in node_blocks(manifest) if b.get("idempotencyKey")]
    if keyed:
        props.append(
            {
                "displayName": "Options",
                "name": OPTIONS,
                "type": "collection",
                "placeholder": "Add Option",
                "default": {},
                "displayOptions": {"show": {"operation": keyed}},
                "options": [
                    {
                        "displayName": "Idempotency Key",
                        "name": KEY_PARAMETER,
                        "type": "string",
                        "default": "",
                        "placeholder": "e.g. {{ $json.orderId }}",
                        "description": KEY_DESCRIPTION,
                    }
                ],
            }
        )
    return props


def return_all_and_limit(show: dict) -> list[dict]:
    """n8n's pair for a list: every item, or the first Limit of them."""
    return [
        {
            "displayName": "Return All",
            "name": "returnAll",
            "type": "boolean",
            "default": False,
            "description": "Whether to return all results or only up to a given limit",
            "displayOptions": show,
        },
        {
            "displayName": "Limit",
            "name": "limit",
            "type": "number",
            "typeOptions": {"minValue": 1},
            "default": LIMIT_DEFAULT,
            "description": "Max number of results to return",
            "displayOptions": {"show": {**show["show"], "returnAll": [False]}},
        },
    ]


def subtitle(manifest: dict) -> str:
    """The canvas line under the node: the operation's action, not its block name."""
    actions = {b["name"]: operation_names(b)[1] for b in node_blocks(manifest)}
    return "={{ " + json.dumps(actions, separators=(",", ":")) + '[$parameter["operation"]] }}'


def node_data(manifest: dict) -> dict:
    return {
        "description": manifest["tagline"],
        "subtitle": subtitle(manifest),
        "documentationUrl": DOCS_URL,
        "properties": node_properties(manifest),
        "operations": {b["name"]: operation_spec(b) for b in node_blocks(manifest)},
    }


def codex(name: str) -> dict:
    """The node's codex file (X.node.json beside X.node.js): what n8n's node panel files it
    under, the words its search finds it by, and its Docs links."""
    return {
        "node": f"{PACKAGE_NAME}.{name}",
        "nodeVersion": "1.0",
        "codexVersion": "1.0",
        "categories": CATEGORIES,
        "alias": ALIASES,
        "resources": {
            "primaryDocumentation": [{"url": DOCS_URL}],
            "credentialDocumentation": [{"url": CREDENTIAL_DOCS_URL}],
        },
    }


# -- the trigger and the credentials --------------------------------------------------------------


def block_named(manifest: dict, name: str) -> dict:
    return next(b for b in manifest["blocks"] if b["name"] == name)


def argument(block: dict, name: str) -> dict:
    return next(a for a in block["args"] if a["name"] == name)


def trigger_data(manifest: dict) -> dict:
    """The polling trigger reads getMessages; its parameters are that block's own."""
    listing = block_named(manifest, "getMessages")
    topic = argument(block_named(manifest, "publishMessage"), "topic")
    props = [
        # n8n's node panel lists a trigger's actions from its Event options (else it says
        # "On new InstaMsg event"), as the built-in triggers do.
        {
            "displayName": "Event",
            "name": "event",
            "type": "options",
            "noDataExpression": True,
            "options": [
                {
                    "name": "New Message",
                    "value": "newMessage",
                    "action": "On new message",
                    "description": "Each message the client publishes, once",
                }
            ],
            "default": "newMessage",
        },
        parameter(located(listing, argument(listing, "tenantId")), in_collection=False),
        parameter(located(listing, argument(listing, "clientId")), in_collection=False),
        {
            "displayName": "Topic",
            "name": "topic",
            "type": "string",
            "default": "",
            "placeholder": topic.get("example", ""),
            "description": "Only messages on this topic (exactly as published); left empty, "
            "messages on every topic.",
        },
    ]
    return {"block": listing["name"], "documentationUrl": DOCS_URL, "properties": props}


def event_value(kind) -> str:
    """An event's option value: ``newMessage`` (the value workflows saved before other
    events existed), ``newClient``, ``newFile``."""
    return "new" + kind.noun


def instant_trigger_data(manifest: dict) -> dict:
    """The instant trigger: an Event option per row of the events' table (message.received
    first, the default), and the polling trigger's tenant, client and topic parameters, each
    shown for the events whose filter takes it; ``events`` tells the node, per option, the
    event and which parameters make its filter."""
    polling = {p["name"]: p for p in trigger_data(manifest)["properties"]}
    event = {
        **polling["event"],
        "options": [
            {
                "name": f"New {kind.noun}",
                "value": event_value(kind),
                "action": f"On new {kind.noun.lower()}",
                "description": kind.summary.rstrip("."),
            }
            for kind in KINDS.values()
        ],
        "default": event_value(KINDS[DEFAULT_EVENT]),
    }
    props = [event]
    for name in FILTER_FIELDS:
        takers = [event_value(k) for k in KINDS.values() if name in k.fields]
        shown = {"displayOptions": {"show": {"event": takers}}} if len(takers) < len(KINDS) else {}
        props.append({**polling[name], **shown})
    return {
        "events": {
            event_value(kind): {
                "event": kind.name,
                "filter": list(kind.filter),
                "optional": list(kind.optional),
            }
            for kind in KINDS.values()
        },
        "documentationUrl": DOCS_URL,
        "properties": props,
    }


def credential_data(manifest: dict) -> dict:
    """The credential: its fields (each one a call needs is required), its Docs link, and the
    block its test runs with them."""
    return {
        "documentationUrl": CREDENTIAL_DOCS_URL,
        "testBlock": CREDENTIAL_TEST_BLOCK,
        "properties": credential_properties(manifest),
    }


def credential_properties(manifest: dict) -> list[dict]:
    token = block_named(manifest, CREDENTIAL_TEST_BLOCK)
    key, secret = (argument(token, name) for name in APP_CREDENTIALS)
    return [
        {
            "displayName": "Connector URL",
            "name": "baseUrl",
            "type": "string",
            "default": "http://localhost:8080",
            "required": True,
            "description": "Where the InstaMsg connector answers; every operation is a POST to "
            "/blocks/<name> there.",
        },
        {
            "displayName": "Connector API Key",
            "name": "apiKey",
            "type": "string",
            "typeOptions": {"password": True},
            "default": "",
            "description": "Sent as X-API-Key when given; needed when the connector sets "
            "CONNECTOR_API_KEYS.",
        },
        {
            "displayName": "Client Key",
            "name": "clientKey",
            "type": "string",
            "default": "",
            "required": True,
            "description": key["info"]
            + " Every operation sends it with the secret; the connector gets and renews the "
            "access tokens itself.",
        },
        {
            "displayName": "Client Secret",
            "name": "clientSecret",
            "type": "string",
            "typeOptions": {"password": True},
            "default": "",
            "required": True,
            "description": secret["info"],
        },
    ]


# -- the package ---------------------------------------------------------------------------------


def package_json(manifest: dict) -> dict:
    return {
        "name": PACKAGE_NAME,
        "version": manifest["version"],
        "description": "n8n nodes for " + manifest["tagline"] + ", through the InstaMsg connector.",
        "keywords": ["n8n-community-node-package", *manifest["keywords"]],
        "files": ["lib", "nodes", "credentials", "README.md"],
        "peerDependencies": {"n8n-workflow": "*"},
        "n8n": {
            "n8nNodesApiVersion": 1,
            "credentials": [f"credentials/{CREDENTIAL[:1].upper()}{CREDENTIAL[1:]}.credentials.js"],
            "nodes": [f"nodes/{name}/{name}.node.js" for name in (NODE, TRIGGER, INSTANT)],
        },
    }


def readme(manifest: dict) -> str:
    lines = [
        f"# {PACKAGE_NAME}",
        "",
        "Generated from the connector's manifest by `make integrations` (do not edit; a test",
        'checks it is fresh). How to install it: "Use it from n8n" in the connector\'s README;',
        "what maps to what, how it is tested and its limits: docs/integrations.md there.",
        "",
        f"- Credentials `{CREDENTIAL}`: the connector's URL, its API key, your app's client key "
        "and secret (sent with every call; the connector manages the tokens).",
        f"- Node `{NODE[:1].lower()}{NODE[1:]}`: one operation per block, `POST /blocks/<name>`.",
        f"- Trigger `{TRIGGER[:1].lower()}{TRIGGER[1:]}`: each new message of a client, once.",
        f"- Trigger `{INSTANT[:1].lower()}{INSTANT[1:]}`: the same, pushed by the connector the "
        "moment it sees the message (a signed webhook; the workflow must be published); also "
        + ", ".join(f"{k.name} ({k.summary.rstrip('.').lower()})" for k in list(KINDS.values())[1:])
        + ".",
        "",
        "| resource | operations |",
        "| --- | --- |",
    ]
    for tag in resources(manifest):
        names = sorted(b["name"] for b in node_blocks(manifest) if b["tag"] == tag["name"])
        lines.append(f"| {tag['name']} | {', '.join(names)} |")
    return "\n".join(lines) + "\n"


def render_json(document) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def templates() -> dict[str, str]:
    return {
        str(path.relative_to(TEMPLATES)): path.read_text()
        for path in sorted(TEMPLATES.rglob("*"))
        if path.is_file()
    }


def files(manifest: dict) -> dict[str, str]:
    """Every file of integrations/n8n/, by its path there."""
    out = dict(templates())
    out["package.json"] = render_json(package_json(manifest))
    out["README.md"] = readme(manifest)
    out[f"nodes/{NODE}/{NODE}.description.json"] = render_json(node_data(manifest))
    out[f"nodes/{TRIGGER}/{TRIGGER}.description.json"] = render_json(trigger_data(manifest))
    out[f"nodes/{INSTANT}/{INSTANT}.description.json"] = render_json(instant_trigger_data(manifest))
    for name in (NODE, TRIGGER, INSTANT):
        out[f"nodes/{name}/{name}.node.json"] = render_json(codex(name[:1].lower() + name[1:]))
    out["credentials/InstaMsgApi.description.json"] = render_json(credential_data(manifest))
    # The credential shows the node's icon (one drawing, kept once in the templates).
    out["credentials/instamsg.svg"] = out[f"nodes/{NODE}/instamsg.svg"]
    return dict(sorted(out.items()))


def stale(target: Path = TARGET, manifest: dict | None = None) -> list[str]:
    """The paths under ``target`` that differ from what the manifest makes, or are extra."""
    wanted = files(manifest if manifest is not None else load_manifest())
    present = (
        {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
        if target.exists()
        else set()
    )
    differ = [
        path
        for path, text in wanted.items()
        if not (target / path).is_file() or (target / path).read_text() != text
    ]
    return sorted(set(differ) | (present - set(wanted)))


def write(target: Path = TARGET, manifest: dict | None = None) -> list[str]:
    wanted = files(manifest if manifest is not None else load_manifest())
    for extra in stale(target, manifest):
        if extra not in wanted:
            (target / extra).unlink()
    for path, text in wanted.items():
        dest = target / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.is_file() or dest.read_text() != text:
            dest.write_text(text)
    return sorted(wanted)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    where = TARGET.relative_to(ROOT)
    if "--check" in argv:
        behind = stale()
        if behind:
            print(
                f"stale in {where}: " + ", ".join(behind) + " (run: make integrations)",
                file=sys.stderr,
            )
            return 1
        print(f"{where} is up to date")
        return 0
    print(f"wrote {len(write())} files in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
