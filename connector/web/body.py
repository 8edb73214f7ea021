"""A block call's arguments from an HTTP request: JSON (``{"args": {...}}`` or bare), form
fields, multipart parts, and the query string of a POST."""

from __future__ import annotations

from flask import Request, request

from connector import jsonx
from connector.engine.arguments import SWITCH_ON
from connector.errors import InvalidRequest


class ConnectorRequest(Request):
    """Flask's request, with a form parser that says when a form cannot be read (werkzeug's
    default drops a broken multipart body silently, which would look like missing args)."""

    def make_form_data_parser(self):
        parser = super().make_form_data_parser()
        parser.silent = False
        return parser


#: The most arguments one call may carry: a block takes about twenty, and every argument
#: costs work (an ignored one, a hint): a body of a million names must not hold a worker.
MAX_ARGS = 500


def read_args() -> dict:
    """The arguments: the body's (any accepted kind) over the query string's."""
    args = query_args()
    args.update(body_args())
    if len(args) > MAX_ARGS:
        raise InvalidRequest(
            f"The call carries {len(args)} arguments; a block takes at most {MAX_ARGS}. "
            "Send only the block's arguments (GET /blocks/<name> lists them)."
        )
    if any(isinstance(key, str) and key.endswith("[]") for key in args):
        return {unbracket(key): value for key, value in args.items()}
    return args


def query_args() -> dict:
    """Arguments in a POST's query string; ``stream`` there is a switch, not an argument."""
    if not request.environ.get("QUERY_STRING"):
        return {}
    return {k: v[0] if len(v) == 1 else v for k, v in request.args.lists() if k != "stream"}


def unbracket(key):
    """``pubTopics[]`` (PHP-style list fields, as some form builders send them) is
    ``pubTopics``; form fields given twice are already a list."""
    return key[:-2] if isinstance(key, str) and key.endswith("[]") and len(key) > 2 else key


def looks_like_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[")


def body_args() -> dict:
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        return read_form()
    raw = request.get_data()
    if mimetype == "application/x-www-form-urlencoded" and not looks_like_json(raw):
        return read_form()
    # JSON, or JSON sent with a form content type (curl -d '{...}' without -H).
    if not raw.strip():
        return {}
    try:
        body = jsonx.loads(raw)
    except ValueError:
        raise InvalidRequest(
            "The request body is not valid JSON. Send a JSON object (optionally as "
            '{"args": {...}}), form fields, or multipart/form-data.'
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            'The request body must be a JSON object: {"args": {...}} or the arguments.'
        )
    problem = jsonx.request_problem(body)
    if problem:
        raise InvalidRequest(f"The request body cannot be taken: {problem}.")
    if "args" in body:
        args = body["args"]
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise InvalidRequest('"args" must be a JSON object of the block\'s arguments.')
        if "to" in body and "to" not in args:
            args = {**args, "to": body["to"]}
        return args
    return body


def read_form() -> dict:
    try:
        form, files = request.form, request.files
    except ValueError:
        raise InvalidRequest("The form body could not be read.") from None
    # A part whose name werkzeug cannot read comes back named None: it is no argument.
    args = {k: v[0] if len(v) == 1 and not k.endswith("[]") else v for k, v in form.lists() if k}
    for key, storage in files.items():
        if key:
            args[key] = storage
    return args


def stream_switch() -> bool:
    """``?stream=1`` on the URL: downloadFile answers the raw bytes. (No query string, no
    parse: most calls have none.)"""
    if not request.environ.get("QUERY_STRING"):
        return False
    return request.args.get("stream", "").strip().lower() in SWITCH_ON
