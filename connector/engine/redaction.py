"""Secrets out of answers: what a call carries that no answer or log line may repeat."""

from __future__ import annotations

import base64

REDACTED = "[redacted]"


def secret_values(blk, args) -> list[str]:
    """The secrets this call carries, to scrub from whatever it answers."""
    found = [v for k in blk.secret_keys if isinstance(v := args.get(k), str) and len(v) >= 4]
    key, secret = args.get("clientKey"), args.get("clientSecret")
    if isinstance(key, str) and isinstance(secret, str):
        # The Basic header they make: sent by the OAuth blocks and by managed-token fetches.
        found.append(base64.b64encode(f"{key}:{secret}".encode()).decode("ascii"))
    return found


def scrub(value, secrets):
    """``value`` with every secret replaced in its text (values only, keys as they are)."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value
