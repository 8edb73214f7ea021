"""JSON in and out: orjson where it can, the standard library where orjson refuses.

orjson parses and writes 5 to 15 times faster than the json module on the
connector's payloads (bench/README: 1.5 us against 14 us per call), but it
refuses integers beyond 64 bits and nesting deeper than 1024, which are valid
JSON; those fall back to the json module so nothing valid is refused.
"""

from __future__ import annotations

import json

import orjson


def loads(data):
    """Parse JSON text or bytes; ValueError when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("nested too deeply") from None


def dumps(value) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


#: How deep a request body may nest: what orjson writes (and so what the connector can keep,
#: digest and send on). JSON itself sets no limit; the json module's parser stops near 1000.
MAX_DEPTH = 254


def request_problem(value) -> str | None:
    """Why a parsed request body cannot be taken, or None. Text must be Unicode a JSON
    writer can write (no lone surrogate such as ``"\\udc80"``, in a name or a value), and
    nesting no deeper than MAX_DEPTH. One orjson write answers the common case in
    microseconds; only a body it refuses is walked, without recursion."""
    try:
        orjson.dumps(value)
        return None
    except (orjson.JSONEncodeError, TypeError):
        pass
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"it is nested more than {MAX_DEPTH} levels deep"
        if isinstance(item, str):
            texts = (item,)
        elif isinstance(item, dict):
            texts = [k for k in item if isinstance(k, str)]
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            texts = ()
            stack.extend((v, depth + 1) for v in item)
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return "it holds text that is not Unicode (a lone surrogate such as \\udc80)"
    return None  # only integers wider than 64 bits: valid JSON, the fields judge them
