"""A block call's arguments from an HTTP request: JSON (``{"args": {...}}`` or bare), form
fields, multipart parts, and the query string of a POST."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from flask import Request, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from connector import jsonx
from connector.engine.arguments import SWITCH_ON
from connector.errors import InvalidRequest

#: The most arguments one call may carry: a block takes about twenty, and every argument
#: costs work (an ignored one, a hint): a body of a million names must not hold a worker.
#: A form stops being parsed at this many fields (ConnectorRequest.max_form_parts).
MAX_ARGS = 500


def too_many_args(count: int | None = None) -> InvalidRequest:
    """The refusal of a call past MAX_ARGS (``count`` unknown when a form parser stopped)."""
    carries = f"{count} arguments" if count is not None else f"more than {MAX_ARGS} arguments"
    return InvalidRequest(
        f"The call carries {carries}; a block takes at most {MAX_ARGS}. "
        "Send only the block's arguments (GET /blocks/<name> lists them)."
    )


#: How much of one urlencoded name or value is percent-decoded at a time (bytes).
DECODE_SLICE = 64 * 1024


def form_text(part: bytes) -> str:
    """One urlencoded name or value as text: ``+`` a space, ``%XX`` its byte, as werkzeug
    reads it (bytes that are not UTF-8 kept as their escapes). Decoded a slice at a time:
    Python's ``unquote`` splits its whole input at every ``%``, so one value of 4 million
    escapes cost a worker a list of 8 million pieces (+946 MB for a 12 MB body); a slice's
    pieces are freed before the next, and the decoding stays the library's."""
    part = part.replace(b"+", b" ")
    if b"%" not in part:
        return part.decode("utf-8", "werkzeug.url_quote")
    decoded, start, size = bytearray(), 0, len(part)
    while start < size:
        end = min(size, start + DECODE_SLICE)
        if end < size:  # never cut an escape in two: end before a % in the last two bytes
            cut = part.rfind(b"%", max(start, end - 2), end)
            end = cut if cut > start else end
        decoded += unquote_to_bytes(part[start:end])
        start = end
    return decoded.decode("utf-8", "werkzeug.url_quote")


class FormParser(FormDataParser):
    """werkzeug's form parser, stopping at ``max_form_parts`` fields in either kind of form.

    werkzeug applies ``max_form_parts`` to multipart forms only (and says so past it with the
    413 of a body too large); a urlencoded form was split whole, a million fields and all,
    before the count of arguments could refuse it. Here the separators are counted before
    anything is split, and each name and value is decoded within a bounded memory
    (``form_text``)."""

    def _parse_urlencoded(self, stream, mimetype, content_length, options):
        raw = stream.read()
        if raw.count(b"&") >= self.max_form_parts:
            raise too_many_args()
        items = []
        for pair in raw.split(b"&"):
            if pair:
                name, _, value = pair.partition(b"=")
                items.append((form_text(name), form_text(value)))
        return stream, self.cls(items), self.cls()

    def _parse_multipart(self, stream, mimetype, content_length, options):
        try:
            return super()._parse_multipart(stream, mimetype, content_length, options)
        except RequestEntityTooLarge:
            # A chunked body (no Content-Length) read up to the body limit is too large;
            # else the decoder stopped at max_form_parts (the memory bound of one part is the
            # body limit: app.py).
            if content_length is None and getattr(stream, "is_exhausted", False):
                raise
            raise too_many_args() from None


class ConnectorRequest(Request):
    """Flask's request, with a form parser that says when a form cannot be read (werkzeug's
    default drops a broken multipart body silently, which would look like missing args) and
    stops at MAX_ARGS fields."""

    form_data_parser_class = FormParser
    max_form_parts = MAX_ARGS

    def make_form_data_parser(self):
        parser = super().make_form_data_parser()
        parser.silent = False
        return parser


def read_args() -> dict:
    """The arguments: the body's (any accepted kind) over the query string's."""
    args = query_args()
    args.update(body_args())
    if len(args) > MAX_ARGS:
        raise too_many_args(len(args))
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


#: Content types whose body is read as JSON when it is not a form: JSON's own, none at all,
#: text (what a hand-typed request often says), and a form whose body is JSON (curl -d).
JSON_READ = ("application/json", "", "text/plain", "application/x-www-form-urlencoded")


def reads_as_json(mimetype: str) -> bool:
    return mimetype in JSON_READ or mimetype.endswith("+json")


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
        if not reads_as_json(mimetype):
            # XML, say: told by its own name rather than as broken JSON.
            raise InvalidRequest(
                f"The connector does not read a body of type {mimetype[:80]}. Send a JSON object "
                '(optionally as {"args": {...}}), form fields, or multipart/form-data.',
                http_status=415,
            ) from None
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
