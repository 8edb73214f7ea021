"""Issue 21 item 1: a secret argument has a bound, checked before anything reads the value,
and scrubbing costs one read of the text per secret, whatever the secrets' length.

Proved by structure, not by the clock: the refusal is made before validation and before the
scrubber is given the value; the scrubber compiles no pattern from a long secret and reads
each text once per long secret."""

import json

import pytest
import requests

from connector.engine import redaction
from connector.engine.registry import REGISTRY
from schemas import fields as f
from schemas.fields import MAX_SECRET_BYTES
from tests.support.faultkit import workers_of
from tests.support.servers import gunicorn

#: Far past the bound: a quarter of the issue's 4 MB case keeps the table quick.
HUGE = 2**20

SECRET_ARGS = [(blk.name, key) for blk in REGISTRY for key in blk.secret_keys]


def context(answer):
    return answer.json["contextWrites"]["to"]


@pytest.fixture
def watched(monkeypatch):
    """What the length check let through: every call to validation, and the length of the
    longest secret the scrubber was given."""
    seen = {"loads": 0, "longest_scrubbed": 0}
    for blk in REGISTRY:
        real = blk.load

        def load(args, real=real):
            seen["loads"] += 1
            return real(args)

        monkeypatch.setattr(blk, "load", load)
    prepare = redaction.Redaction.__init__

    def noted(self, secrets):
        secrets = list(secrets)
        seen["longest_scrubbed"] = max([seen["longest_scrubbed"], *map(len, secrets)])
        prepare(self, secrets)

    monkeypatch.setattr(redaction.Redaction, "__init__", noted)
    return seen


def test_every_secret_argument_is_checked():
    # Every block takes a credential, and each kind of secret argument appears.
    assert {name for name, _ in SECRET_ARGS} == set(REGISTRY.names())
    assert {key for _, key in SECRET_ARGS} == {
        "accessToken",
        "clientKey",
        "clientSecret",
        "token",
        "provisioningKey",
        "gsmPassword",
        "gsmSimPin",
    }


@pytest.mark.parametrize(("block", "key"), SECRET_ARGS)
def test_an_oversized_secret_is_refused_before_anything_reads_it(
    client, nothing_sent, watched, block, key
):
    # maxClients is invalid too (the call): only the length check may answer.
    args = {"accessToken": "tok-3f9a8c7e", "maxClients": -1, key: "A" * HUGE}
    answer = client.post(f"/blocks/{block}", json=args)
    assert answer.status_code == 422
    error = context(answer)
    assert (error["status_code"], error["fields"]) == ("INVALID_FIELDS", [key])
    assert error["status_msg"] == (
        f"Invalid arguments: {key}: Must be at most {MAX_SECRET_BYTES} bytes of UTF-8."
    )
    assert watched["loads"] == 0, "validation read the oversized value"
    assert watched["longest_scrubbed"] <= MAX_SECRET_BYTES, "the scrubber was given it"


def test_a_secret_at_its_bound_goes_on_to_validation(client, nothing_sent, watched):
    token = "A" * MAX_SECRET_BYTES
    answer = client.post("/blocks/createTenant", json={"accessToken": token, "maxClients": -1})
    assert answer.status_code == 422 and "accessToken" not in context(answer)["fields"]
    assert watched["loads"] == 1
    assert watched["longest_scrubbed"] == MAX_SECRET_BYTES


BOUNDS = [
    # (the value, over MAX_SECRET_BYTES)
    ("a" * MAX_SECRET_BYTES, False),
    ("a" * (MAX_SECRET_BYTES + 1), True),
    ("é" * (MAX_SECRET_BYTES // 2), False),  # two bytes each: exactly at the bound
    ("é" * (MAX_SECRET_BYTES // 2 + 1), True),  # fewer characters than the bound, more bytes
    ("a" * HUGE, True),
]


@pytest.mark.parametrize(("value", "over"), BOUNDS, ids=[f"{len(v)}-{o}" for v, o in BOUNDS])
def test_the_bound_is_in_bytes_of_utf8(value, over):
    field = f.Credentials("A key.")
    assert field.too_long(value) is over


# -- the scrubber's cost -------------------------------------------------------------------


class CountedText(str):
    """A text that counts the characters its ``find`` calls pass over."""

    def __new__(cls, value):
        made = super().__new__(cls, value)
        made.read = 0
        return made

    def find(self, sub, start=0, *rest):
        found = super().find(sub, start, *rest)
        self.read += (found + len(sub) if found >= 0 else len(self)) - start
        return found


@pytest.fixture
def compiled(monkeypatch):
    """The size of every pattern the scrubber compiles."""
    sizes = []
    real = redaction.re.compile

    def compile_(pattern, *args):
        sizes.append(len(pattern))
        return real(pattern, *args)

    monkeypatch.setattr(redaction.re, "compile", compile_)
    return sizes


LONG = "tok-" + "9f3a" * (MAX_SECRET_BYTES // 4 - 1)  # a long secret at the bound
SHORT = ["s3cr3t", "1234"]


@pytest.mark.parametrize("size", [MAX_SECRET_BYTES, 16 * MAX_SECRET_BYTES, HUGE])
def test_no_pattern_is_compiled_from_a_long_secret(compiled, size):
    secret = "k" * (size - 1) + "!"
    text = "InstaMsg said: " + secret + " and s3cr3t"
    assert redaction.scrub(text, [secret, *SHORT]) == "InstaMsg said: [redacted] and [redacted]"
    # Only the short secrets make a pattern: its size does not grow with the long one.
    assert compiled and max(compiled) < 40 * len(SHORT) * redaction.LONG_SECRET


@pytest.mark.parametrize("length", [10_000, 100_000, 1_000_000])
def test_each_long_secret_reads_the_text_once(length):
    # The worst text for a naive search: the secret's every prefix, over and over.
    secrets = [LONG, LONG[::-1], "app-secret-91d0"]
    text = CountedText((LONG[:-1] + " ") * (length // len(LONG)) + LONG)
    scrubbed = redaction.scrub(text, secrets)
    assert scrubbed.endswith(" [redacted]") and LONG not in scrubbed
    # Counted: one whole read per long secret, never one per place a search could start.
    assert len(text) <= text.read <= len(secrets) * len(text)


# -- the call, on a real worker ----------------------------------------------------


def peak_rss_mib(pid: int) -> float:
    """The most memory ``pid`` has held (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


#: What a worker may grow by for the issue's 16 MB call: reading and parsing the body costs
#: about 50 MiB; the scrubber's pattern cost 2,400 MiB (issue 21: +1.9 GB).
WORKER_GROWTH_MIB = 400


@pytest.mark.slow
def test_a_16_mb_token_is_refused_without_growing_the_worker(tmp_path):
    args = {"accessToken": "A" * 16_000_000, "name": "T", "maxClients": -1, "maxMessages": 1}
    body = json.dumps({"args": args})
    with gunicorn({"INSTAMSG_DATA_DIR": str(tmp_path)}, workers=1) as (base, process):
        [worker] = workers_of(process)
        before = peak_rss_mib(worker)
        answer = requests.post(
            f"{base}/blocks/createTenant",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        grown = peak_rss_mib(worker) - before
    error = answer.json()["contextWrites"]["to"]
    assert (answer.status_code, error["fields"]) == (422, ["accessToken"])
    assert grown < WORKER_GROWTH_MIB, f"the worker grew by {grown:.0f} MiB"
