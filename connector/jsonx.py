"""JSON in and out: orjson where it can, the standard library where orjson refuses.

orjson parses and writes 5 to 15 times faster than the json module on the
connector's payloads (bench/README: 1.5 us against 14 us per call), but it
refuses integers beyond 64 bits and nesting deeper than 1024, which are valid
JSON; those fall back to the json module so nothing valid is refused.

One depth bounds both directions: a request body and an answer of InstaMsg's nest no deeper
than MAX_DEPTH, what orjson writes.
"""

from __future__ import annotations

import json

import orjson

#: How deep a request body or an upstream answer may nest: what orjson writes (and so what the
#: connector can keep, digest and send on). JSON itself sets no limit; the json module's
#: parser stops near 1000.
MAX_DEPTH = 254

TOO_DEEP = f"it is nested more than {MAX_DEPTH} levels deep"
NOT_UNICODE = "it holds text that is not Unicode (a lone surrogate such as \\udc80)"


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH (or than the json module's parser can follow)."""


def loads(data):
    """Parse JSON text or bytes; ValueError when it is not JSON (TooDeep when it nests
    deeper than the json module's parser follows)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:  # the parser's own stack ran out: a bound, reached cheaply
            raise TooDeep(TOO_DEEP) from None


def loads_bounded(data: bytes):
    """Parse an answer of InstaMsg's: ValueError when it is not JSON a writer can write
    again, TooDeep when it nests deeper than MAX_DEPTH.

    Cheap for what InstaMsg answers: text with no more brackets than MAX_DEPTH cannot nest
    deeper (two counts in C); only text with more, or text orjson refused, is checked."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value = loads(data)
    else:
        if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
            return value
    problem = request_problem(value)
    if problem == TOO_DEEP:
        raise TooDeep(problem)
    if problem is not None:
        raise ValueError(problem)
    return value


def dumps(value) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def request_problem(value) -> str | None:
    """Why a parsed body cannot be taken, or None. Text must be Unicode a JSON writer can
    write (no lone surrogate such as ``"\\udc80"``, in a name or a value), and containers
    nest no deeper than MAX_DEPTH. One orjson write answers the common case in
    microseconds; only a body it refuses is walked, without recursion."""
    try:
        orjson.dumps(value)
        return None
    except (orjson.JSONEncodeError, TypeError):
        pass
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            texts = (item,)
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return TOO_DEEP
            if isinstance(item, dict):
                texts = [k for k in item if isinstance(k, str)]
                stack.extend((v, depth + 1) for v in item.values())
            else:
                texts = ()
                stack.extend((v, depth + 1) for v in item)
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return NOT_UNICODE
    return None  # only integers wider than 64 bits: valid JSON, the fields judge them
