"""Shared fixtures. The upstream of every test app is a recording stand-in on
127.0.0.1 (tests/support/fake_upstream.py): the real transport is exercised, and even a
test that forgot to register an answer could only ever reach this machine."""

import os

import pytest
from hypothesis import settings as hypothesis_settings

from app import create_app
from connector.config import Settings
from tests.support.upstream import FAKE, UPSTREAM

# In CI the fuzzers run the same examples every time (and keep no example database), so a
# red run can be replayed exactly; on a developer's machine they explore anew each run.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture
def settings(tmp_path):
    # Retries stay on, with waits too short to slow the suite down.
    return Settings(
        api_url=UPSTREAM,
        connect_timeout=1,
        read_timeout=0.5,
        retry_base=0.001,
        retry_cap=0.002,
        data_dir=str(tmp_path),
    )


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def upstream():
    """The recording upstream, emptied; at the end, every registered answer was used
    and nothing unregistered was asked for."""
    FAKE.reset()
    yield FAKE
    FAKE.check()


@pytest.fixture
def loopback_only(monkeypatch):
    """uploadFile's downloads may connect to 127.0.0.0/8 and ::1 only. Any other address is
    refused here before a packet is sent, even if the address check under test is broken,
    and every attempt is recorded for the test to assert on."""
    import ipaddress

    from connector.upstream import fetch

    real = fetch.open_socket
    attempts = []

    def guarded(address, port, timeout):
        attempts.append((address, port))
        if not ipaddress.ip_address(address).is_loopback:
            raise ConnectionRefusedError(f"tests never connect to {address}")
        return real(address, port, timeout)

    monkeypatch.setattr(fetch, "open_socket", guarded)
    return attempts


@pytest.fixture
def no_upstream():
    """Fails the test if any upstream request is made."""
    FAKE.reset()
    yield FAKE
    assert FAKE.calls == [], "an upstream request was made"
