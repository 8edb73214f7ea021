"""A delivery as the document a hook's expressions read, and the arguments they take from it.

The document is ``{"body": ..., "headers": ..., "query": ...}``: the body as JSON (an object,
a list or any JSON value), as form fields, or as text; headers with lower-cased names; the
query string's parameters. Each of the hook's ``map`` entries is a JMESPath expression over
it (the jmespath library), compiled once when the hook is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

import jmespath
from jmespath.exceptions import JMESPathError

from connector import jsonx
from connector.errors import InvalidFields, InvalidRequest

#: The most arguments a hook maps, and the longest expression it takes (characters): an
#: expression's cost grows with its length and the body's size, both bounded.
MAX_MAP = 50
MAX_EXPRESSION = 500
#: Content types whose body is read as JSON (and any ``+json`` type).
JSON_TYPES = ("application/json", "text/json")
FORM_TYPE = "application/x-www-form-urlencoded"


def compile_expression(name: str, text) -> jmespath.parser.ParsedResult:
    """``text`` compiled, or INVALID_FIELDS naming ``name`` (where it was given) and why."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_EXPRESSION:
        why = f"give a JMESPath expression of 1 to {MAX_EXPRESSION} characters"
        raise InvalidFields(f"{name}: {why}.", fields=[name], errors={name: [why]})
    try:
        return jmespath.compile(text)
    except JMESPathError as error:
        # The parser's own sentence names the token and its place in the expression.
        why = f"the expression {text!r} does not compile: {str(error).splitlines()[0]}"
        raise InvalidFields(f"{name}: {why}.", fields=[name], errors={name: [why]}) from None


def read_body(raw: bytes, mimetype: str):
    """The body as the expressions see it: JSON, form fields (a name given twice is a list)
    or text. A body that says it is JSON and is not is refused (400)."""
    if mimetype in JSON_TYPES or mimetype.endswith("+json"):
        if not raw.strip():
            return None
        try:
            return jsonx.loads(raw)
        except ValueError:
            raise InvalidRequest("The delivery's body says it is JSON and is not.") from None
    if mimetype == FORM_TYPE:
        fields: dict = {}
        for name, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            if name in fields:
                kept = fields[name]
                fields[name] = [*kept, value] if isinstance(kept, list) else [kept, value]
            else:
                fields[name] = value
        return fields
    return raw.decode("utf-8", "replace")


def document(body, headers: Mapping[str, str], query: Mapping) -> dict:
    return {
        "body": body,
        "headers": {name.lower(): value for name, value in headers.items()},
        "query": dict(query),
    }


def search(name: str, text: str, doc: dict):
    """One expression's value in ``doc``; a path that finds nothing (or fails on a type) is
    INVALID_FIELDS naming the argument and its expression. The expression compiled when the
    hook was made comes from the jmespath library's cache of compiled expressions."""
    try:
        value = jmespath.compile(text).search(doc)
    except JMESPathError as error:
        why = f"{text!r} cannot be read from this delivery ({type(error).__name__})"
        raise InvalidFields(f"{name}: {why}.", fields=[name], errors={name: [why]}) from None
    if value is None:
        why = f"{text!r} finds nothing in this delivery"
        raise InvalidFields(f"{name}: {why}.", fields=[name], errors={name: [why]})
    return value


def mapped_args(expressions: Mapping[str, str], doc: dict) -> dict:
    """Every mapped argument's value in ``doc``."""
    return {name: search(name, text, doc) for name, text in expressions.items()}
