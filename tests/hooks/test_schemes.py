"""Each scheme checks the raw body as its provider signs it: a right signature passes; a wrong
secret, a tampered body, a missing header and a stale timestamp are refused with the code that
says so, and nothing about the secret."""

import base64
import hashlib
import hmac
import time

import pytest
import stripe

from connector.hooks.errors import SignatureInvalid, SignatureMissing, SignatureStale
from connector.hooks.schemes import SCHEMES, TOLERANCE, check_standard_secret, check_token
from tests.support.webhooks import fixture, github_headers, standard_headers, stripe_headers

NOW = time.time()
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-24b").decode()
GITHUB_SECRET = "gh-hook-secret-5c1e"
STRIPE_SECRET = "whsec_stripe-test-9a0f"
HMAC_SECRET = "shop-secret-77e2"
PUSH = fixture("github_push.json")
EVENT = fixture("stripe_event.json")


def lowered(headers):
    return {k.lower(): v for k, v in headers.items()}


def shop_hmac(secret, raw, algorithm="sha256", encoding="base64", prefix=""):
    digest = hmac.new(secret.encode(), raw, getattr(hashlib, algorithm)).digest()
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return {"X-Shop-Hmac": prefix + text}


HMAC_CONF = {"header": "X-Shop-Hmac", "algorithm": "sha256", "encoding": "base64", "prefix": ""}
HMAC_HEX = {"header": "X-Shop-Hmac", "algorithm": "sha1", "encoding": "hex", "prefix": "sha1="}

# (scheme, its options, the secret, how a sender signs: (secret, raw, when) -> headers, body)
SENDERS = {
    "standard-webhooks": (
        {},
        STANDARD_SECRET,
        lambda s, raw, when: standard_headers(s, raw, "msg_2Kq9", when),
        PUSH,
    ),
    "github": ({}, GITHUB_SECRET, lambda s, raw, when: github_headers(s, raw, "d-1"), PUSH),
    "stripe": ({}, STRIPE_SECRET, lambda s, raw, when: stripe_headers(s, raw, when), EVENT),
    "hmac base64": (HMAC_CONF, HMAC_SECRET, lambda s, raw, when: shop_hmac(s, raw), PUSH),
    "hmac sha1 hex with a prefix": (
        HMAC_HEX,
        HMAC_SECRET,
        lambda s, raw, when: shop_hmac(s, raw, "sha1", "hex", "sha1="),
        PUSH,
    ),
}


def check(name, conf, secret, headers, raw, now=NOW):
    scheme = SCHEMES[name.split(" ")[0]]
    scheme.check({**conf, "secret": secret}, raw, lowered(headers), now)


@pytest.mark.parametrize("name", SENDERS)
def test_a_delivery_signed_by_its_sender_passes(name):
    conf, secret, sign, raw = SENDERS[name]
    check(name, conf, secret, sign(secret, raw, NOW), raw)


@pytest.mark.parametrize("name", SENDERS)
def test_a_wrong_secret_is_refused_as_invalid(name):
    conf, secret, sign, raw = SENDERS[name]
    other = STANDARD_SECRET[:-8] + "AAAAAAA=" if name == "standard-webhooks" else secret + "x"
    with pytest.raises(SignatureInvalid) as refused:
        check(name, conf, secret, sign(other, raw, NOW), raw)
    assert secret not in refused.value.message and refused.value.http_status == 401


@pytest.mark.parametrize("name", SENDERS)
def test_a_tampered_body_is_refused_as_invalid(name):
    conf, secret, sign, raw = SENDERS[name]
    headers = sign(secret, raw, NOW)
    with pytest.raises(SignatureInvalid):
        check(name, conf, secret, headers, raw.replace(b'"', b"'", 1))


@pytest.mark.parametrize(
    ("name", "dropped"),
    [
        ("standard-webhooks", "webhook-signature"),
        ("standard-webhooks", "webhook-timestamp"),
        ("github", "X-Hub-Signature-256"),
        ("stripe", "Stripe-Signature"),
        ("hmac base64", "X-Shop-Hmac"),
    ],
)
def test_a_missing_header_is_refused_as_missing_and_named(name, dropped):
    conf, secret, sign, raw = SENDERS[name]
    headers = {k: v for k, v in sign(secret, raw, NOW).items() if k != dropped}
    with pytest.raises(SignatureMissing) as refused:
        check(name, conf, secret, headers, raw)
    assert dropped in refused.value.message


@pytest.mark.parametrize("name", ["standard-webhooks", "stripe"])
@pytest.mark.parametrize("offset", [-(TOLERANCE + 30), TOLERANCE + 30])
def test_a_timestamp_past_the_tolerance_is_refused_as_stale(name, offset):
    conf, secret, sign, raw = SENDERS[name]
    with pytest.raises(SignatureStale):
        check(name, conf, secret, sign(secret, raw, NOW + offset), raw)


@pytest.mark.parametrize("offset", [-(TOLERANCE - 30), TOLERANCE - 30])
def test_a_timestamp_within_the_tolerance_passes(offset):
    conf, secret, sign, raw = SENDERS["stripe"]
    check("stripe", conf, secret, sign(secret, raw, NOW + offset), raw)


@pytest.mark.parametrize(
    ("header", "stripe_says"),
    [
        ("good", True),
        ("two signatures, one right (a secret being rolled)", True),
        ("wrong secret", False),
        ("no v1", False),
    ],
)
def test_the_stripe_scheme_agrees_with_stripes_own_check(header, stripe_says):
    good = stripe_headers(STRIPE_SECRET, EVENT, NOW)["Stripe-Signature"]
    wrong = stripe_headers(STRIPE_SECRET + "x", EVENT, NOW)["Stripe-Signature"]
    value = {
        "good": good,
        "two signatures, one right (a secret being rolled)": wrong + "," + good.split(",")[1],
        "wrong secret": wrong,
        "no v1": good.split(",")[0],
    }[header]
    try:
        stripe.WebhookSignature.verify_header(EVENT, value, STRIPE_SECRET, tolerance=TOLERANCE)
        theirs = True
    except stripe.SignatureVerificationError:
        theirs = False
    try:
        check("stripe", {}, STRIPE_SECRET, {"Stripe-Signature": value}, EVENT)
        ours = True
    except SignatureInvalid:
        ours = False
    assert ours == theirs == stripe_says


@pytest.mark.parametrize(
    ("secret", "accepted"),
    [
        (STANDARD_SECRET, True),
        ("whsec_not base64!", False),
    ],
)
def test_a_standard_webhooks_secret_must_be_one(secret, accepted):
    assert (check_standard_secret(secret) is None) == accepted


@pytest.mark.parametrize(
    ("token", "accepted"),
    [
        ("A" * 22, True),
        ("A" * 21, False),  # fewer than 128 bits
        ("a/b" * 10, False),  # not URL-safe
    ],
)
def test_a_url_token_has_at_least_128_bits_of_url_safe_text(token, accepted):
    assert (check_token(token) is None) == accepted


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_scheme_makes_a_secret_its_own_check_accepts(name):
    made = {SCHEMES[name].make_secret() for _ in range(3)}
    assert len(made) == 3
    assert all(SCHEMES[name].refuse_secret(secret) is None for secret in made)
