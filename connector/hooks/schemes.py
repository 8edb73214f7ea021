"""How a hook knows its sender: one table of schemes, each a way to check the RAW body and
headers of a delivery before anything parses them, a way to make a secret, and the delivery id
the sender gives by default.

Every comparison of a secret or signature is constant-time (``hmac.compare_digest``). A
timestamp more than TOLERANCE seconds from now is refused (Standard Webhooks, Stripe). Headers
are given with lower-cased names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import standardwebhooks

from connector.hooks.errors import SignatureInvalid, SignatureMissing, SignatureStale

#: How far a signed timestamp may be from the connector's clock (seconds): 5 minutes, as
#: Standard Webhooks and Stripe say.
TOLERANCE = 300
#: The longest secret a hook keeps (characters): a provider's secret is well under it.
MAX_SECRET = 512
#: The shortest secret a hook takes (characters): one signed delivery lets anyone who saw it try
#: secrets offline, and a few characters fall at once. GitHub's form takes any text; providers
#: that make the secret themselves (Stripe, Svix) make longer ones.
MIN_SECRET = 16
#: A URL token carries at least this many random bits: 22 URL-safe base64 characters do.
TOKEN_BITS = 128
TOKEN_CHARS = -(-TOKEN_BITS // 6)
#: The bytes of randomness in a secret or token the connector makes (192 bits).
MADE_BYTES = 24
URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
#: The algorithms and encodings the generic HMAC scheme takes.
ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
ENCODINGS = ("hex", "base64")

Headers = Mapping[str, str]


def missing(*names: str) -> SignatureMissing:
    return SignatureMissing(
        "The delivery lacks the header(s) this hook's scheme signs with: "
        + ", ".join(names)
        + ". Send it as the hook's sender does (see GET /hooks/<id>: verify.scheme)."
    )


def invalid(what: str = "The signature does not match the body") -> SignatureInvalid:
    return SignatureInvalid(
        f"{what}. Check that the sender signs with this hook's secret and that nothing "
        "between the sender and the connector changes the body."
    )


def stale() -> SignatureStale:
    return SignatureStale(
        f"The delivery's signed timestamp is more than {TOLERANCE} seconds from the "
        "connector's clock: a replayed delivery, or a clock that is off. Send it anew."
    )


def timestamp(text: str) -> int:
    """A header's unix timestamp, or SIGNATURE_INVALID when it is not one."""
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise invalid("The signed timestamp is not a number of seconds")
    return int(text)


def fresh(stamp: int, now: float) -> None:
    if abs(now - stamp) > TOLERANCE:
        raise stale()


# -- each scheme's check -------------------------------------------------------------------


def standard_webhooks(conf: Mapping, raw: bytes, headers: Headers, now: float) -> None:
    """Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature ("v1,<base64>"
    entries separated by spaces), checked by the standardwebhooks library."""
    names = ("webhook-id", "webhook-timestamp", "webhook-signature")
    absent = [name for name in names if not headers.get(name)]
    if absent:
        raise missing(*absent)
    fresh(timestamp(headers["webhook-timestamp"]), now)
    try:
        standardwebhooks.Webhook(conf["secret"]).verify(
            raw, {name: headers[name] for name in names}, json_parse=False
        )
    except standardwebhooks.WebhookVerificationError:
        raise invalid() from None


def github(conf: Mapping, raw: bytes, headers: Headers, now: float) -> None:
    """GitHub: X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of the body."""
    given = headers.get("x-hub-signature-256")
    if not given:
        raise missing("X-Hub-Signature-256")
    expected = "sha256=" + hmac.new(conf["secret"].encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace")):
        raise invalid()


def stripe(conf: Mapping, raw: bytes, headers: Headers, now: float) -> None:
    """Stripe: Stripe-Signature is "t=<unix time>,v1=<hex>[,v1=...]"; each v1 is the hex
    HMAC-SHA256 of "<t>.<body>". Any one v1 that matches will do (a secret being rolled)."""
    given = headers.get("stripe-signature")
    if not given:
        raise missing("Stripe-Signature")
    parts = [item.partition("=") for item in given.split(",")]
    stamps = [value.strip() for name, _, value in parts if name.strip() == "t"]
    signatures = [value.strip() for name, _, value in parts if name.strip() == "v1"]
    if len(stamps) != 1 or not signatures:
        raise invalid("Stripe-Signature has no t= or no v1= entry")
    stamp = timestamp(stamps[0])
    fresh(stamp, now)
    signed = stamps[0].encode() + b"." + raw
    expected = hmac.new(conf["secret"].encode(), signed, hashlib.sha256).hexdigest().encode()
    if not any(hmac.compare_digest(expected, s.encode("utf-8", "replace")) for s in signatures):
        raise invalid()


def generic_hmac(conf: Mapping, raw: bytes, headers: Headers, now: float) -> None:
    """Any HMAC of the body in one header: its name, sha256 or sha1, hex or base64, and a
    prefix before the digest ("sha256=") when the sender writes one."""
    header = conf["header"]
    given = headers.get(header.lower())
    if not given:
        raise missing(header)
    given = given.strip()
    prefix = conf.get("prefix") or ""
    if not given.startswith(prefix):
        raise invalid(f"{header} does not start with the prefix this hook expects")
    text = given[len(prefix) :]
    try:
        if conf.get("encoding", "hex") == "hex":
            digest = bytes.fromhex(text)
        else:
            digest = base64.b64decode(text.encode("ascii"), validate=True)
    except ValueError:
        raise invalid(f"{header} is not a digest in the hook's encoding") from None
    algorithm = ALGORITHMS[conf.get("algorithm", "sha256")]
    expected = hmac.new(conf["secret"].encode(), raw, algorithm).digest()
    if not hmac.compare_digest(expected, digest):
        raise invalid()


def token_only(conf: Mapping, raw: bytes, headers: Headers, now: float) -> None:
    """Nothing is signed: the URL's token is the proof (checked with the URL, see
    ``token_matches``)."""


def token_matches(hook: Mapping, given: str | None) -> bool:
    """Whether a delivery's URL names the hook's token (constant-time); a hook of another
    scheme takes no token in its URL."""
    expected = hook["verify"].get("secret") if hook["verify"]["scheme"] == "token" else None
    if expected is None or given is None:
        return expected is None and given is None
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


# -- secrets -------------------------------------------------------------------------------


def standard_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(MADE_BYTES)).decode("ascii")


def url_safe_secret() -> str:
    return secrets.token_urlsafe(MADE_BYTES)


def check_standard_secret(secret: str) -> str | None:
    try:
        standardwebhooks.Webhook(secret)
    except Exception:  # noqa: BLE001  (the library raises several kinds for a bad secret)
        return 'a Standard Webhooks secret is "whsec_" and base64 bytes'
    return None


def check_token(secret: str) -> str | None:
    if len(secret) < TOKEN_CHARS or not URL_SAFE.fullmatch(secret):
        return (
            f"a URL token is at least {TOKEN_CHARS} characters of A-Z, a-z, 0-9, - and _ "
            f"({TOKEN_BITS} random bits); leave it out to have one made"
        )
    return None


@dataclass(frozen=True)
class Scheme:
    """One way a sender proves itself. ``options``: what the hook's ``verify`` takes beside
    scheme and secret, with their choices (None: any text) and whether required."""

    name: str
    check: Callable[[Mapping, bytes, Headers, float], None]
    make_secret: Callable[[], str]
    #: a sentence saying what is wrong with a given secret, or None when it will do
    refuse_secret: Callable[[str], str | None] = lambda secret: None
    #: the JMESPath of the delivery id the sender gives, when it gives one
    delivery_id: str | None = None
    options: Mapping[str, tuple] = None  # name -> (choices or None, required, default)

    def __post_init__(self):
        if self.options is None:
            object.__setattr__(self, "options", {})


SCHEMES = {
    scheme.name: scheme
    for scheme in (
        Scheme(
            "standard-webhooks",
            standard_webhooks,
            standard_secret,
            check_standard_secret,
            delivery_id='headers."webhook-id"',
        ),
        Scheme("github", github, url_safe_secret, delivery_id='headers."x-github-delivery"'),
        Scheme("stripe", stripe, url_safe_secret, delivery_id="body.id"),
        Scheme(
            "hmac",
            generic_hmac,
            url_safe_secret,
            options={
                "header": (None, True, None),
                "algorithm": (tuple(ALGORITHMS), False, "sha256"),
                "encoding": (ENCODINGS, False, "hex"),
                "prefix": (None, False, ""),
            },
        ),
        Scheme("token", token_only, url_safe_secret, check_token),
    )
}
