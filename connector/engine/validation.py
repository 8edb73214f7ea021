"""What a caller is told when a block's arguments do not load: which are missing, which are
invalid, and what the caller seems to have meant."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from connector.errors import InvalidFields, RequiredFields


def _flatten(messages, prefix="") -> list[str]:
    """Marshmallow's nested messages as 'where: what' sentences."""
    if isinstance(messages, Mapping):
        out = []
        for key, value in messages.items():
            where = (
                f"{prefix}[{key}]"
                if isinstance(key, int)
                else (f"{prefix}.{key}" if prefix else str(key))
            )
            out.extend(_flatten(value, where))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" if prefix else m for m in messages]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, prefix)]
    return [f"{prefix}: {messages}"]


#: How many unknown argument names the missing-argument hints look at, at most.
MAX_HINTED = 50


def validation_error(messages: dict, given: Mapping, block):
    """REQUIRED_FIELDS when anything required is missing, else INVALID_FIELDS.

    Told apart by structure, not by marshmallow's wording: an argument with an error that
    the caller did not give (absent, ``""`` or ``null``) is missing; one that was given is
    invalid. When none of an update's ``at_least_one`` arguments was given, the answer
    says to give at least one of them."""
    messages = dict(messages)
    present = {k for k, v in given.items() if isinstance(k, str) and v is not None and v != ""}
    known = {key for key, _ in block.args}
    missing = [key for key in messages if key in known and key not in present]
    fields = block.loader.fields
    group = [fields[name].data_key or name for name in block.loader.at_least_one]
    none_of_group = bool(group) and all(key in missing for key in group)
    if none_of_group:
        missing = [key for key in missing if key not in group]
    # The hints compare each missing name with what was sent instead: a bounded number of
    # the strangers, so that one body of many names cannot make this quadratic.
    strangers = [key for key in given if isinstance(key, str) and key not in known]
    strangers = strangers[:MAX_HINTED]
    sentences = []
    if missing:
        sentences.append(
            "Missing required arguments: "
            + ", ".join(missing_hint(key, strangers) for key in missing)
            + "."
        )
    if none_of_group:
        sentences.append("Give at least one of: " + ", ".join(group) + ".")
    told = set(missing) | (set(group) if none_of_group else set())
    invalid = {k: v for k, v in messages.items() if k not in told}
    if invalid:
        parts = [part if part.endswith(".") else part + "." for part in _flatten(invalid)]
        sentences.append("Invalid arguments: " + " ".join(parts))
    error = RequiredFields if missing or none_of_group else InvalidFields
    names = [key for key in messages if key != "_schema"]
    return error(" ".join(sentences), fields=names, errors=messages)


def missing_hint(key: str, strangers: list[str]) -> str:
    """``key``, with what the caller seems to have sent instead: the same name in another
    case, or a name a typo or two away."""
    for stranger in strangers:
        if stranger.lower() == key.lower():
            return f"{key} (you sent {stranger!r}; names are case-sensitive)"
    close = difflib.get_close_matches(key, strangers, n=1, cutoff=0.75)
    if close:
        return f"{key} (you sent {close[0]!r}; did you mean {key!r}?)"
    return key
