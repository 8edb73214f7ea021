"""The ``flask --app app blocks`` commands: list the blocks, describe one, call one.

``call`` is a face of the engine, like the HTTP blueprint: it turns KEY=VALUE pairs into
arguments, runs the block with ``Engine.run`` in this process, and prints the same envelope
an HTTP caller gets (validation, tokens, errors and the scrubbing of secrets are the
engine's, not a copy of them). stdout carries only what the command answers (the envelope,
the list, the description); the connector's JSON log lines go to stderr.

Under the ``flask`` command the connector runs in sandbox mode unless INSTAMSG_SANDBOX is
set, like ``make run``: ``create_app`` reads the environment through
``connector.config.with_sandbox_default``, which changes nothing in the process's environment.
"""

from __future__ import annotations

import io
import json
import mimetypes
import re
import sys
import textwrap
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from werkzeug.datastructures import FileStorage

from connector.engine import Invocation
from connector.engine.arguments import held_credentials
from connector.engine.invocation import LISTED_BY
from connector.engine.registry import REGISTRY
from connector.errors import ConnectorError, UnknownBlock
from connector.events.kinds import DEFAULT_EVENT, EVENTS, FILTER_FIELDS, KINDS
from connector.generate import manifest

#: Lines of ``describe`` are wrapped to this width, whatever the terminal's.
WIDTH = 100
#: Shown first after an argument's name, type and required, before any other entry.
SHOWN_FIRST = ("options", "default")
FIRST_SENTENCE = re.compile(r"(.+?[.!?])(?=\s|$)", re.S)


blocks = AppGroup("blocks", help="List, describe and call the connector's blocks.")


def pretty(value) -> str:
    """``value`` as indented JSON, for a person to read."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def first_sentence(text: str) -> str:
    found = FIRST_SENTENCE.match(text.strip())
    return found.group(1) if found else text.strip()


# -- list and describe --------------------------------------------------------------------


@blocks.command("list")
@click.option("--json", "as_json", is_flag=True, help="The manifest's block entries, as JSON.")
def list_command(as_json):
    """Every block: its name and what it does."""
    entries = manifest.manifest()["blocks"]
    if as_json:
        click.echo(pretty(entries))
        return
    width = max(len(entry["name"]) for entry in entries)
    for entry in entries:
        click.echo(f"{entry['name']:<{width}}  {first_sentence(entry['description'])}")


@blocks.command("describe", short_help="A block's description and arguments.")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The block's manifest entry, as JSON.")
def describe_command(name, as_json):
    """A block's description and arguments."""
    try:
        blk = REGISTRY.get(name, LISTED_BY["cli"])
    except UnknownBlock as error:
        raise click.UsageError(error.message) from None
    entry = manifest.block_entry(blk)
    click.echo(pretty(entry) if as_json else describe(entry))


def describe(entry: dict) -> str:
    """A manifest entry as text: the description, then each argument."""
    lines = [entry["name"], *wrap(entry["description"], "")]
    args = entry.get("args", [])
    if args:
        lines += ["", "Arguments:"]
        name_width = max(len(arg["name"]) for arg in args)
        type_width = max(len(arg["type"]) for arg in args)
        for arg in args:
            head = [
                f"{arg['name']:<{name_width}}",
                f"{arg['type']:<{type_width}}",
                "required" if arg.get("required") else "optional",
            ]
            extra = [k for k in SHOWN_FIRST if k in arg]
            extra += [k for k in arg if k not in (*SHOWN_FIRST, "name", "type", "required", "info")]
            nested = []
            for key in extra:
                value = arg[key]
                if (
                    isinstance(value, list)
                    and value
                    and all(isinstance(v, dict) and "name" in v for v in value)
                ):
                    nested += [f"{key}:"] + [
                        f"  {v['name']} ({v.get('type', '?')}): {v.get('info', '')}" for v in value
                    ]
                else:
                    head.append(f"{key}: {shown(value)}")
            lines.append("  " + "  ".join(head).rstrip())
            lines += wrap(arg.get("info", ""), " " * 6)
            lines += [" " * 6 + line for line in nested]
    lines += rules(entry)
    outputs = entry.get("outputs")
    if isinstance(outputs, dict) and outputs.get("fields"):
        lines += ["", f"Answers (under contextWrites.{outputs.get('key', 'to')}):"]
        for out in outputs["fields"]:
            lines.append(
                f"    {out['name']}  {out.get('type', '?')}  sample: {shown(out.get('sample'))}"
            )
            lines += wrap(out.get("info", ""), " " * 8)
    known = ("name", "description", "args", "callbacks", "outputs", "oneOf", "atLeastOne", "tag")
    for key, value in entry.items():
        if key not in known:
            lines += ["", f"{key}: {json.dumps(value, ensure_ascii=False)}"]
    return "\n".join(lines)


def rules(entry: dict) -> list[str]:
    """The block's argument rules (one of several groups; at least one of) as sentences."""
    lines = []
    for group in entry.get("oneOf") or []:
        choices = [" and ".join(names) for names in group]
        lines.append("Give " + ", or ".join(choices) + ".")
    if entry.get("atLeastOne"):
        lines.append("Give at least one of: " + ", ".join(entry["atLeastOne"]) + ".")
    if entry.get("tag"):
        lines.append(f"Resource: {entry['tag']}.")
    return ["", "Rules:", *("    " + line for line in lines)] if lines else []


def shown(value) -> str:
    """A manifest value on one line: a list of plain values comma-separated."""
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def wrap(text: str, indent: str) -> list[str]:
    """``text`` wrapped to the terminal width used here, indented."""
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent) or []


# -- call ---------------------------------------------------------------------------------


def file_part(data: bytes, filename: str) -> FileStorage:
    """A file read for a File argument, as the HTTP face would receive its multipart part."""
    kind = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return FileStorage(io.BytesIO(data), filename, content_type=kind)


@blocks.command("call", short_help="Run a block and print its envelope as JSON.")
@click.argument("name")
@click.argument("pairs", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--json",
    "json_args",
    metavar="OBJECT",
    help="A JSON object of arguments (or @path, @- for stdin); a KEY=VALUE pair wins over the "
    "same key in it.",
)
@click.option("--to", "to", metavar="KEY", help="The key of the result under contextWrites.")
@click.option(
    "--api-key",
    envvar="CONNECTOR_API_KEY",
    show_envvar=True,
    help="One of CONNECTOR_API_KEYS, where it is set.",
)
@click.option(
    "--idempotency-key",
    "key",
    metavar="KEY",
    help="Run a call that changes something at most once: the same KEY with the same "
    "arguments answers the first call's answer again (as the HTTP header does).",
)
def call_command(name, pairs, json_args, to, api_key, key):
    """Run block NAME in this process with the connector's engine, and print the envelope as
    JSON (with stream=1, downloadFile's raw bytes instead). Exit status: 0 success, 1 error
    envelope, 2 usage error.

    Each KEY=VALUE is an argument, as text (the connector parses numbers, lists, JSON); a
    KEY given twice is a list. KEY=@path reads the file: a File argument (uploadFile's file)
    is sent as that file, any other argument gets its text. KEY=@- reads stdin.
    """
    stdin = StdinOnce()
    args = read_json_option(json_args, stdin) if json_args is not None else {}
    args.update(read_pairs(name, pairs, stdin))
    if to is not None:
        args["to"] = to
    engine = current_app.extensions["instamsg"]
    engine.announce()
    answer = engine.call(Invocation(face="cli"), name, args, api_key=api_key, key=key)
    envelope, reply = answer.envelope, answer.reply
    if reply is not None:  # downloadFile with stream: the bytes themselves
        out = sys.stdout.buffer
        with reply:
            for chunk in reply.iter_content(64 * 1024):
                out.write(chunk)
        out.flush()
        return
    click.echo(pretty(envelope))
    if envelope.get("callback") == "success":
        return
    click.get_current_context().exit(1)


def listed(value) -> list:
    """``value`` as a list (a key given once or several times)."""
    return value if isinstance(value, list) else [value]


class StdinOnce:
    """stdin, which one argument may read (``@-``)."""

    def __init__(self):
        self.reader = None

    def read(self, who: str) -> bytes:
        if self.reader is not None:
            raise click.UsageError(
                f"Only one argument can read stdin (@-): {self.reader} already does, so "
                f"{who} cannot."
            )
        self.reader = who
        return sys.stdin.buffer.read()


def read_json_option(text: str, stdin: StdinOnce) -> dict:
    if text.startswith("@"):
        text = as_text("--json", read_source("--json", text[1:], stdin))
    try:
        value = json.loads(text)
    except ValueError as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        where = (
            f" (line {error.lineno}, column {error.colno})"
            if isinstance(error, json.JSONDecodeError)
            else ""
        )
        raise click.UsageError(f"--json is not valid JSON: {reason}{where}.") from None
    if not isinstance(value, dict):
        raise click.UsageError(
            '--json must be a JSON object of arguments, like \'{"name": "Farm"}\'.'
        )
    return value


def read_pairs(name: str, pairs, stdin: StdinOnce) -> dict:
    """``KEY=VALUE`` pairs as arguments; a key given twice is a list."""
    try:
        files = {key for key, fld in REGISTRY.get(name).args if fld.manifest_type == "File"}
    except UnknownBlock:
        files = set()  # the connector answers UNKNOWN_BLOCK itself
    args: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.UsageError(
                f"{pair!r} is not KEY=VALUE: give each argument as name=value "
                "(name=@path reads a file)."
            )
        if not key:
            raise click.UsageError(f"{pair!r} has no argument name before the '='.")
        if value.startswith("@"):
            data = read_source(pair, value[1:], stdin)
            if key in files:
                path = value[1:]
                value = file_part(data, "stdin" if path == "-" else Path(path).name)
            else:
                value = as_text(pair, data)
        if key not in args:
            args[key] = value
        elif isinstance(args[key], list):
            args[key].append(value)
        else:
            args[key] = [args[key], value]
    return args


def read_source(who: str, path: str, stdin: StdinOnce) -> bytes:
    if path == "-":
        return stdin.read(who)
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise click.UsageError(f"{who}: cannot read {path!r}: {error.strerror}.") from None


def as_text(who: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise click.UsageError(
            f"{who}: the file is not UTF-8 text. Only a File argument (uploadFile's file) is "
            "sent as bytes; give fileContent as base64."
        ) from None


# -- mcp ----------------------------------------------------------------------------------


@blocks.command("mcp", short_help="Serve every block as a tool of an MCP server (stdio or HTTP).")
@click.option(
    "--url",
    metavar="URL",
    help="Run the blocks on the connector deployed at URL (its base URL) instead of in this "
    "process.",
)
@click.option(
    "--api-key",
    envvar="CONNECTOR_API_KEY",
    show_envvar=True,
    help="Sent as X-API-Key, for a connector with CONNECTOR_API_KEYS set.",
)
@click.option(
    "--http",
    "bind",
    metavar="[HOST:]PORT",
    help="Serve MCP over streamable HTTP at /mcp on HOST:PORT (HOST 127.0.0.1 unless given) "
    "instead of stdio.",
)
@click.option(
    "--allow-keyless",
    is_flag=True,
    help="With --http and no CONNECTOR_API_KEYS: serve on an address other than loopback "
    "anyway (anyone who reaches it runs blocks).",
)
@click.option(
    "--allowed-hosts",
    envvar="MCP_ALLOWED_HOSTS",
    show_envvar=True,
    default="",
    metavar="LIST",
    help="With --http: more Host header values to answer (comma-separated, e.g. "
    "mcp.example.com or mcp:*), beyond loopback names and the address bound.",
)
@click.option(
    "--allowed-origins",
    envvar="MCP_ALLOWED_ORIGINS",
    show_envvar=True,
    default="",
    metavar="LIST",
    help="With --http: browser origins allowed to call it (comma-separated, e.g. "
    "https://app.example.com), beyond pages on loopback.",
)
def mcp_command(url, api_key, bind, allow_keyless, allowed_hosts, allowed_origins):
    """Serve the Model Context Protocol for AI agents: one tool per block, on stdin and
    stdout, or with --http over streamable HTTP. Blocks run in this process (sandbox mode
    unless INSTAMSG_SANDBOX=0), or with --url on a deployed connector. Over stdio, stdout is
    the protocol; logs go to stderr. With INSTAMSG_CLIENT_KEY and INSTAMSG_CLIENT_SECRET
    set, the server holds the app's credentials and the agent never sees them (docs/mcp.md).
    Over HTTP every request needs one of CONNECTOR_API_KEYS (Authorization: Bearer, or
    X-API-Key); without any it serves on loopback only, unless --allow-keyless.
    """
    # Imported here: the SDK loads only for this command, never for gunicorn's workers.
    from connector.mcp import runners, server

    engine = current_app.extensions["instamsg"]
    credentials = held_credentials(engine.settings)
    if url and not re.match(r"(?i)^https?://[^/\s]", url):
        raise click.BadParameter("must be an http:// or https:// URL.", param_hint="--url")
    if bind is not None:
        serve_mcp_http(
            engine, url, api_key, bind, allow_keyless, credentials, allowed_hosts, allowed_origins
        )
        return
    if url:
        remote = runners.Remote(url, api_key)
        server.serve_stdio(remote, where=remote.shown, credentials=credentials)
        return
    engine.announce()
    mode = "sandbox" if engine.settings.sandbox else "live"
    server.serve_stdio(
        lambda name, args, key=None: runners.run_in_process(engine, name, args, key, api_key),
        where=f"this process ({mode})",
        credentials=credentials,
    )


def serve_mcp_http(engine, url, api_key, bind, allow_keyless, credentials, hosts, origins):
    """``blocks mcp --http``: the checks of the command line, then connector/mcp/http.py."""
    from connector.mcp import http, runners

    try:
        host, port = http.parse_bind(bind)
    except ValueError as error:
        raise click.BadParameter(str(error) + ".", param_hint="--http") from None
    if engine.keyless and not http.is_loopback(host) and not allow_keyless:
        raise click.UsageError(
            f"CONNECTOR_API_KEYS is not set: anyone who reaches {host} could run blocks. "
            "Set CONNECTOR_API_KEYS, serve on 127.0.0.1, or add --allow-keyless."
        )
    if url:
        remote = runners.Remote(url, api_key)
        run_block, where = remote, remote.shown
    else:
        engine.announce()
        mode = "sandbox" if engine.settings.sandbox else "live"

        def run_block(name, args, key, caller_key):
            # The caller's key over HTTP; on a keyless server, --api-key (or none).
            return runners.run_in_process(engine, name, args, key, caller_key or api_key)

        where = f"this process ({mode})"
    http.serve(
        engine,
        run_block,
        where=where,
        host=host,
        port=port,
        credentials=credentials,
        hosts=split_list(hosts),
        origins=split_list(origins),
    )


def split_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


# -- hooks: ``flask --app app hooks add|list|show|remove`` -----------------------------------

hooks = AppGroup("hooks", help="Make, list, show and remove webhook hooks (connector/hooks).")


def hooks_service():
    return current_app.extensions["instamsg_hooks"]


def pairs_of(option: str, pairs) -> dict:
    """``KEY=VALUE`` options as a dict, each value as text."""
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.UsageError(f"{option} {pair!r} is not KEY=VALUE.")
        found[name] = value
    return found


def hook_answer(work):
    """Print what ``work`` answers as JSON; a refusal prints its error (as the HTTP face's
    envelope says it) and exits 1."""
    from connector.errors import ConnectorError

    try:
        click.echo(pretty(work()))
    except ConnectorError as error:
        click.echo(pretty(error.to_dict()))
        sys.exit(1)


@hooks.command("add", short_help="Make a hook; prints its URL and secret (shown this once).")
@click.argument("block")
@click.option("--arg", "args", multiple=True, metavar="KEY=VALUE", help="A fixed argument.")
@click.option(
    "--map", "maps", multiple=True, metavar="KEY=EXPRESSION", help="An argument's JMESPath."
)
@click.option("--scheme", required=True, help="standard-webhooks, github, stripe, hmac or token.")
@click.option("--secret", help="The sender's secret (made when left out).")
@click.option(
    "--option", "options", multiple=True, metavar="KEY=VALUE", help="hmac: header, algorithm..."
)
@click.option("--delivery-id", help="The JMESPath of the delivery id (the scheme's default).")
def add_hook(block, args, maps, scheme, secret, options, delivery_id):
    """Make a hook that runs BLOCK, as POST /hooks does."""
    verify = {"scheme": scheme, **pairs_of("--option", options)}
    if secret is not None:
        verify["secret"] = secret
    body = {
        "block": block,
        "args": pairs_of("--arg", args),
        "map": pairs_of("--map", maps),
        "verify": verify,
    }
    if delivery_id is not None:
        body["delivery_id"] = delivery_id
    hook_answer(lambda: hooks_service().create(body))


@hooks.command("list")
def list_hooks():
    """Every hook (no secret)."""
    hook_answer(lambda: hooks_service().all())


@hooks.command("show")
@click.argument("hook_id")
def show_hook(hook_id):
    """One hook (no secret)."""
    hook_answer(lambda: hooks_service().view(hooks_service().get(hook_id)))


@hooks.command("remove")
@click.argument("hook_id")
def remove_hook(hook_id):
    """Remove a hook and its deliveries' records."""

    def work():
        hooks_service().remove(hook_id)
        return {"id": hook_id, "removed": True}

    hook_answer(work)


@hooks.command("worker", short_help="Run queued deliveries (respond: queued) until stopped.")
@click.option("--workers", default=2, show_default=True, help="Deliveries run at once.")
def hooks_worker(workers):
    """Run the deliveries of queued hooks from the queue (SQLite in the data directory, or
    Redis with REDIS_URL) until stopped. At its start every delivery left unfinished (a
    worker killed mid-run) is queued again; each runs under its key, so none runs twice."""
    import logging

    from redis.exceptions import RedisError

    from connector import logs

    # Huey's own lines in the connector's JSON form (type and place of an error, no text).
    handler = logs.StderrHandler()
    handler.setFormatter(logs.JsonFormatter())
    # A queue that does not answer (Redis down) fails each look: said once in a while.
    handler.addFilter(logs.Repeats(every=HOOKS_WORKER_REPEATS_S))
    queue_log = logging.getLogger("huey")
    queue_log.addHandler(handler)
    queue_log.setLevel(logging.WARNING)
    queue_log.propagate = False
    service = hooks_service()
    service.engine.announce()
    while True:  # the start's sweep needs the state store: wait for it (said each try)
        try:
            requeued = service.sweep(stale_only=False)
            break
        except (ConnectorError, RedisError) as error:  # the store, or the queue, in Redis
            logs.event("hooks worker waits for the state store", logging.WARNING,
                       code=getattr(error, "code", type(error).__name__))  # fmt: skip
            time.sleep(HOOKS_WORKER_REPEATS_S)
    logs.event("hooks worker", workers=workers, requeued=requeued)
    service.queue.consumer(workers).run()


#: How often the hooks worker says again that the same thing fails (seconds), and how long it
#: waits before it tries again a start the state store did not answer.
HOOKS_WORKER_REPEATS_S = 5.0


# -- instant triggers: `subscriptions` and `events` (connector/events) --------------------

subscriptions = AppGroup(
    "subscriptions", help="Subscribe flows to events (new messages, ...): add, list, show, remove."
)
events = AppGroup("events", help="Run the event watcher that delivers subscribed messages.")


def events_service():
    return current_app.extensions["events"]


def refused(error) -> None:
    """A refused command: the error's message on stderr, exit status 1."""
    click.echo(error.message, err=True)
    click.get_current_context().exit(1)


def filter_options(command):
    """``--tenant-id``, ``--client-id``, ``--topic``: one option per filter field of the
    events' table (connector/events/kinds.py); which ones an event needs is its row's, and the
    subscription's refusal names a missing one."""
    for name, said in reversed(FILTER_FIELDS.items()):
        takers = ", ".join(k.name for k in KINDS.values() if name in k.fields)
        flag = "--" + "".join("-" + c.lower() if c.isupper() else c for c in name)
        command = click.option(flag, name, help=f"{said[:-1]}; for {takers}.")(command)
    return command


@subscriptions.command("add", short_help="Subscribe a URL to an event: new messages, ...")
@click.option(
    "--event",
    type=click.Choice(EVENTS),
    default=DEFAULT_EVENT,
    show_default=True,
    help="What is sent: "
    + ", ".join(f"{k.name} ({k.summary[:1].lower()}{k.summary[1:-1]})" for k in KINDS.values())
    + ".",
)
@filter_options
@click.option("--target-url", required=True, help="Where each new item is POSTed.")
@click.option("--client-key", help="The InstaMsg app to read with (else INSTAMSG_CLIENT_KEY).")
@click.option("--client-secret", envvar="INSTAMSG_SUBSCRIPTION_SECRET", help="Its secret.")
def add_subscription(event, target_url, client_key, client_secret, **flt):
    """Keep a subscription to an event and print it as JSON, with its signing secret: shown
    this once."""
    body = {
        "event": event,
        "filter": {name: value for name, value in flt.items() if value is not None},
        "target_url": target_url,
    }
    if client_key is not None:
        body["clientKey"] = client_key
    if client_secret is not None:
        body["clientSecret"] = client_secret
    try:
        click.echo(pretty(events_service().subscriptions.create(body)))
    except ConnectorError as error:
        refused(error)


@subscriptions.command("list")
def list_subscriptions():
    """Every subscription, as JSON (never a secret)."""
    click.echo(pretty(events_service().subscriptions.list()))


@subscriptions.command("show")
@click.argument("ident", metavar="ID")
@click.option("--deliveries", "log", is_flag=True, help="Its recent deliveries, newest first.")
def show_subscription(ident, log):
    """One subscription (or its delivery log), as JSON."""
    service = events_service()
    try:
        shown = service.deliveries(ident) if log else service.subscriptions.show(ident)
    except ConnectorError as error:
        refused(error)
        return
    click.echo(pretty(shown))


@subscriptions.command("remove")
@click.argument("ident", metavar="ID")
def remove_subscription(ident):
    """Remove a subscription and its delivery log."""
    try:
        events_service().subscriptions.remove(ident)
    except ConnectorError as error:
        refused(error)


@events.command("watch")
@click.option("--once", is_flag=True, help="One round (poll, then send what is due), then exit.")
def watch(once):
    """Poll InstaMsg for every watched client each EVENTS_POLL_SECONDS and deliver new
    messages to their subscribers, until SIGTERM or Ctrl-C. One watcher runs fleet-wide:
    another waits while this one holds the lease."""
    import signal
    import threading

    service = events_service()
    service.engine.announce()
    watcher = service.watcher()
    if once:
        watcher.round()
        return
    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT"):
        signal.signal(getattr(signal, name), lambda *_: stop.set())
    watcher.run(stop)
