"""Signing deliveries as each sender does, with the providers' own libraries where PyPI has
one (standardwebhooks; stripe's WebhookSignature) and GitHub's documented HMAC otherwise, and
the payload fixtures (tests/hooks/fixtures/: a GitHub push and a Stripe event, in their
documented shapes)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import standardwebhooks
import stripe

FIXTURES = Path(__file__).resolve().parent.parent / "hooks" / "fixtures"


def fixture(name: str) -> bytes:
    """A payload fixture's bytes, exactly as a sender would post them."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str):
    return json.loads(fixture(name))


def github_headers(secret: str, raw: bytes, delivery: str, event: str = "push") -> dict:
    """GitHub's headers: X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of the body
    under the webhook's secret (GitHub's docs, "Validating webhook deliveries")."""
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + digest,
    }


def standard_headers(secret: str, raw: bytes, msg_id: str, when: float | None = None) -> dict:
    """Standard Webhooks' headers, signed by the standardwebhooks library."""
    stamp = datetime.fromtimestamp(time.time() if when is None else when, tz=UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(secret).sign(msg_id, stamp, raw),
    }


def stripe_headers(secret: str, raw: bytes, when: float | None = None) -> dict:
    """Stripe-Signature as stripe-python makes it for tests (``generate_signature_header``)."""
    stamp = int(time.time() if when is None else when)
    header = stripe.WebhookSignature.generate_signature_header(raw.decode(), secret, stamp)
    return {"Content-Type": "application/json", "Stripe-Signature": header}
