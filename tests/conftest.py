"""Shared fixtures. InstaMsg is mocked with responses at requests' transport adapter
(``mocked``, ``mocked_in_order``, ``nothing_sent``): every unit-test app calls
https://instamsg.test, which no network answers, so a request nothing was registered for
fails without a socket. What only a socket shows runs against ``loopback``
(tests/support/loopback.py). Nothing here starts a server at import."""

import os

import pytest
import responses
from hypothesis import settings as hypothesis_settings

from app import create_app
from connector.config import Settings
from tests.support.loopback import Loopback
from tests.support.upstream import INSTAMSG

# In CI the fuzzers run the same examples every time (and keep no example database), so a
# red run can be replayed exactly; on a developer's machine they explore anew each run.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture
def settings(tmp_path):
    # Every unit-test app calls InstaMsg at one unroutable URL, answered by responses only.
    # Retries stay on, with waits too short to slow the suite down.
    return Settings(
        api_url=INSTAMSG,
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
def mocked():
    """InstaMsg mocked with responses at requests' transport adapter. Every registered answer
    must be asked for; a request nothing was registered for raises ConnectionError (no
    socket), which the connector answers as UPSTREAM_UNAVAILABLE. Where several answers match
    one request, the first registered serves it once and then steps aside."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def mocked_in_order():
    """``mocked``, for sequences (a retry, a renewed token): the answers are served strictly
    in the order registered, each once, and a request out of turn fails."""
    with responses.RequestsMock(
        assert_all_requests_are_fired=True, registry=responses.registries.OrderedRegistry
    ) as mock:
        yield mock


@pytest.fixture
def nothing_sent():
    """Fails the test if any upstream request is made (answered by nothing, and recorded)."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
        assert list(mock.calls) == [], "an upstream request was made"


@pytest.fixture
def loopback():
    """A recording HTTP server on 127.0.0.1 (tests/support/loopback.py), for what only a real
    socket shows; at the end, every registered answer was used and nothing else was asked."""
    with Loopback() as server:
        yield server
        server.check()
