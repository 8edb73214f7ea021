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
from jmespath import functions, visitor
from jmespath.exceptions import JMESPathError

from connector import jsonx
from connector.errors import InvalidFields, InvalidRequest

#: The most arguments a hook maps, and the longest expression it takes (characters): an
#: expression's cost grows with its length and the body's size, both bounded.
MAX_MAP = 50
MAX_EXPRESSION = 500
#: The work one expression may do on one delivery, in steps: a node of the expression visited
#: is one, and each item a projection, a flatten or a multi-select makes is one more. A path
#: costs a few; an expression that multiplies what it makes (``[@,@,@,@][]`` again and again:
#: four times the work per stage) is stopped here, long before it could hold a worker.
MAX_STEPS = 100_000
#: The longest text ``to_string`` and ``join`` may make (characters): far past any argument.
MAX_TEXT = 1 << 20
#: The node types that make a new list or object, whose items count as steps.
MAKERS = {
    "projection",
    "value_projection",
    "filter_projection",
    "multi_select_list",
    "multi_select_dict",
}
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
            body = jsonx.loads(raw)
        except ValueError:
            raise InvalidRequest("The delivery's body says it is JSON and is not.") from None
        # As a block call's body: text a JSON writer can write again (the delivery's record
        # and its answer are JSON), nested no deeper than the connector reads anywhere.
        problem = jsonx.request_problem(body)
        if problem:
            raise InvalidRequest(f"The delivery's JSON body cannot be taken: {problem}.")
        return body
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


class OverBudget(Exception):
    """An expression did more work than MAX_STEPS, or made a text longer than MAX_TEXT."""


class BoundedFunctions(functions.Functions):
    """JMESPath's functions, with the two that make a text of any length bounded by
    MAX_TEXT: what they would write is measured first, and never past the bound."""

    @functions.signature({"types": []})
    def _func_to_string(self, arg):
        if not isinstance(arg, str):
            written_length(arg)
        return super()._func_to_string(arg)

    @functions.signature({"types": ["string"]}, {"types": ["array-string"]})
    def _func_join(self, separator, array):
        if sum(len(item) + len(separator) for item in array) > MAX_TEXT:
            raise OverBudget
        return super()._func_join(separator, array)


def written_length(value) -> int:
    """Roughly how many characters ``value`` takes as JSON, walked without recursion and
    never past MAX_TEXT (OverBudget then): a list may hold one big value many times."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + sum(len(key) + 4 for key in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 24
        if total > MAX_TEXT:
            raise OverBudget
    return total


class Budgeted(visitor.TreeInterpreter):
    """jmespath's own interpreter, counting its steps (OverBudget past MAX_STEPS)."""

    OPTIONS = jmespath.Options(custom_functions=BoundedFunctions())

    def __init__(self):
        super().__init__(self.OPTIONS)
        self.left = MAX_STEPS

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise OverBudget

    def visit(self, node, *args, **kwargs):
        self.spend(1)
        made = super().visit(node, *args, **kwargs)
        if node["type"] in MAKERS and isinstance(made, (list, dict)):
            self.spend(len(made))
        return made

    def visit_flatten(self, node, value):
        # jmespath's flatten, counted before it is made: one flatten of many lists can be far
        # larger than each of them.
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        self.spend(sum(len(item) if isinstance(item, list) else 1 for item in base))
        merged = []
        for item in base:
            if isinstance(item, list):
                merged.extend(item)
            else:
                merged.append(item)
        return merged


def search(name: str, text: str, doc: dict):
    """One expression's value in ``doc``; a path that finds nothing (or fails on a type) is
    INVALID_FIELDS naming the argument and its expression. The expression compiled when the
    hook was made comes from the jmespath library's cache of compiled expressions."""
    try:
        value = Budgeted().visit(jmespath.compile(text).parsed, doc)
    except JMESPathError as error:
        why = f"{text!r} cannot be read from this delivery ({type(error).__name__})"
        raise InvalidFields(f"{name}: {why}.", fields=[name], errors={name: [why]}) from None
    except OverBudget:
        why = (
            f"{text!r} does more than {MAX_STEPS} steps of work on this delivery, or makes a "
            f"text of more than {MAX_TEXT} characters: read the parts the block needs"
        )
        raise InvalidFields(f"{name}: {why}.", fields=[name], errors={name: [why]}) from None
    if value is None:
        why = f"{text!r} finds nothing in this delivery"
        raise InvalidFields(f"{name}: {why}.", fields=[name], errors={name: [why]})
    return value


def mapped_args(expressions: Mapping[str, str], doc: dict) -> dict:
    """Every mapped argument's value in ``doc``."""
    return {name: search(name, text, doc) for name, text in expressions.items()}
