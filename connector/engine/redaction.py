"""Secrets out of answers: what a call carries that no answer or log line may repeat.

Two rules keep this cheap whatever a caller sends. A secret longer than its field's bound
(``schemas.fields.MAX_SECRET_BYTES``) is refused before anything reads it, so no step below
ever holds one that is too long to be a credential. And scrubbing is a plain search for each
secret, never one pattern built from their text: a pattern compiled from a secret costs
far more than the text it is searched in (one 16 MB token took a worker 18 s and 1.9 GB).
"""

from __future__ import annotations

import base64
import heapq
import json
import re
from collections.abc import Iterator
from urllib.parse import quote_plus

from connector import jsonx
from connector.engine.validation import validation_error
from connector.upstream.outcomes import without_tags

REDACTED = "[redacted]"


def refuse_oversized_secrets(blk, args) -> None:
    """Refuse the call (INVALID_FIELDS, naming the field and its limit) when a secret
    argument is longer than its field allows. Runs first, before the secrets are collected
    and before validation, so that nothing else ever reads such a value."""
    for key, field in blk.secret_fields:
        value = args.get(key)
        if isinstance(value, str) and field.too_long(value):
            messages = {key: [field.error_messages["too_long"].format(max_bytes=field.max_bytes)]}
            raise validation_error(messages, {key: value}, blk)


def secret_values(blk, args) -> list[str]:
    """The secrets this call carries, to scrub from whatever it answers (after
    ``refuse_oversized_secrets``: each is no longer than its field's bound). The other forms
    a secret may be echoed in are added only when an answer is scrubbed (``Redaction``): a
    call that succeeds pays for none of them."""
    found = [v for k in blk.secret_keys if isinstance(v := args.get(k), str) and len(v) >= 4]
    key, secret = args.get("clientKey"), args.get("clientSecret")
    if isinstance(key, str) and isinstance(secret, str):
        # The Basic header they make: sent by the OAuth blocks and by managed-token fetches.
        found.append(base64.b64encode(f"{key}:{secret}".encode()).decode("ascii"))
    return found


def _lower_escapes(text: str) -> str:
    return _ESCAPE.sub(lambda m: m.group(0).lower(), text)


_ESCAPE = re.compile(r"%[0-9A-F]{2}")

#: How a secret may be written in what InstaMsg echoes: in a query string (invalidateAccessToken
#: sends the token there), with upper- or lower-case escapes; inside a JSON string, as the
#: connector's JSON writer (orjson) and an ASCII-only one escape it, and with "/" escaped too
#: (what PHP's json_encode writes); and as the sentence of an HTML error page reads once its
#: tags are dropped and its spaces joined (``outcomes.upstream_message``).
WRITTEN_AS = (
    lambda v: quote_plus(v, safe=""),
    lambda v: _lower_escapes(quote_plus(v, safe="")),
    lambda v: jsonx.dumps(v).decode("utf-8")[1:-1],
    lambda v: json.dumps(v)[1:-1],
    lambda v: jsonx.dumps(v).decode("utf-8")[1:-1].replace("/", "\\/"),
    lambda v: json.dumps(v)[1:-1].replace("/", "\\/"),
    lambda v: " ".join(without_tags(v).split()),
)


#: A secret this long is redacted wherever it appears, inside other text too.
LONG_SECRET = 12


class Redaction:
    """What to redact of a call's ``secrets``, prepared once for every text of one answer.

    The rule: a secret of LONG_SECRET characters or more is redacted wherever it appears (no
    word of prose is that long by chance, and tokens sit inside URLs and headers). A shorter
    one is redacted only where it stands as a whole token (not touching a letter or digit),
    and not at all when it is made of letters alone: "wrong" as a client secret cannot be
    told from the word in InstaMsg's "wrong client secret", and rewriting every such word
    would garble the answer for no protection (the caller sent that secret, and it is too
    weak to be one). Tokens the connector fetched and Basic headers are long: always hidden.

    Where two secrets overlap in a text, the whole stretch they cover is one redaction: no
    piece of either is left beside it. The cost is one linear search of the text per long
    secret (``str.find``) and one pass of a pattern made of the short ones only, whose size
    is bounded by LONG_SECRET and the number of secret arguments, never by a secret's length.
    """

    def __init__(self, secrets):
        # Each secret also in the forms WRITTEN_AS gives, where they differ: InstaMsg may echo
        # the URL or the JSON body it was sent, as text.
        secrets = [s for s in secrets if s]
        secrets += [w for v in secrets for form in WRITTEN_AS if (w := form(v)) != v]
        unique = sorted(set(secrets), key=len, reverse=True)
        self.long = [s for s in unique if len(s) >= LONG_SECRET]
        short = [s for s in unique if len(s) < LONG_SECRET and not s.isalpha()]
        # Each short secret as a whole token: not preceded or followed by a letter or digit.
        self.short = (
            re.compile("|".join(rf"(?<![^\W_]){re.escape(s)}(?![^\W_])" for s in short))
            if short
            else None
        )

    def __bool__(self) -> bool:
        return bool(self.long) or self.short is not None

    def text(self, text: str) -> str:
        """``text`` with every secret in it redacted."""
        found = [_occurrences(text, secret) for secret in self.long]
        if self.short is not None:
            found.append(match.span() for match in self.short.finditer(text))
        stretches: list[list[int]] = []  # [start, end] of each stretch to redact, in order
        for start, end in heapq.merge(*found):
            if stretches and start < stretches[-1][1]:  # overlaps the last one: widen it
                stretches[-1][1] = max(stretches[-1][1], end)
            else:
                stretches.append([start, end])
        if not stretches:
            return text
        pieces, copied = [], 0
        for start, end in stretches:
            pieces += [text[copied:start], REDACTED]
            copied = end
        pieces.append(text[copied:])
        return "".join(pieces)


def _occurrences(text: str, secret: str) -> Iterator[tuple[int, int]]:
    """Where ``secret`` stands in ``text``, left to right, as (start, end) pairs: each search
    starts where the last one ended, so the text is read once."""
    size = len(secret)
    at = text.find(secret)
    while at >= 0:
        yield at, at + size
        at = text.find(secret, at + size)


def redaction(secrets) -> Redaction | None:
    """What to redact of ``secrets`` (None: nothing)."""
    prepared = Redaction(secrets)
    return prepared if prepared else None


def scrub(value, secrets, *, keys=False):
    """``value`` with every secret redacted from its text; ``secrets`` is a list of secrets
    or a ``Redaction``. Keys of objects are left as they are unless ``keys`` (an upstream
    body's keys are its text too; the envelope's own keys are field names)."""
    prepared = secrets if isinstance(secrets, Redaction) or secrets is None else redaction(secrets)
    if not prepared:
        return value
    if isinstance(value, str):
        return prepared.text(value)
    if isinstance(value, dict):
        return {
            (prepared.text(k) if keys and isinstance(k, str) else k): scrub(v, prepared, keys=keys)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub(v, prepared, keys=keys) for v in value]
    return value
