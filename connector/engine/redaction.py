"""Secrets out of answers: what a call carries that no answer or log line may repeat."""

from __future__ import annotations

import base64
import re

REDACTED = "[redacted]"


def secret_values(blk, args) -> list[str]:
    """The secrets this call carries, to scrub from whatever it answers."""
    found = [v for k in blk.secret_keys if isinstance(v := args.get(k), str) and len(v) >= 4]
    key, secret = args.get("clientKey"), args.get("clientSecret")
    if isinstance(key, str) and isinstance(secret, str):
        # The Basic header they make: sent by the OAuth blocks and by managed-token fetches.
        found.append(base64.b64encode(f"{key}:{secret}".encode()).decode("ascii"))
    return found


#: A secret this long is redacted wherever it appears, inside other text too.
LONG_SECRET = 12


def redaction(secrets) -> re.Pattern | None:
    """What to redact of ``secrets``, as one pattern (None: nothing).

    The rule: a secret of LONG_SECRET characters or more is redacted wherever it appears (no
    word of prose is that long by chance, and tokens sit inside URLs and headers). A shorter
    one is redacted only where it stands as a whole token (not touching a letter or digit),
    and not at all when it is made of letters alone: "wrong" as a client secret cannot be
    told from the word in InstaMsg's "wrong client secret", and rewriting every such word
    would garble the answer for no protection (the caller sent that secret, and it is too
    weak to be one). Tokens the connector fetched and Basic headers are long: always hidden.
    """
    parts = []
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= LONG_SECRET:
            parts.append(re.escape(secret))
        elif not secret.isalpha():
            parts.append(rf"(?<![^\W_]){re.escape(secret)}(?![^\W_])")
    return re.compile("|".join(parts)) if parts else None


def scrub(value, secrets):
    """``value`` with every secret redacted from its text (values only, keys as they are);
    ``secrets`` is a list of secrets or a pattern from ``redaction``."""
    pattern = secrets if isinstance(secrets, re.Pattern) or secrets is None else redaction(secrets)
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: scrub(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, pattern) for v in value]
    return value
