"""Shared fixtures. The upstream of every test app is a loopback address: even a
test that forgot to intercept HTTP could only ever reach this machine."""

import pytest
import responses

from app import create_app
from connector.config import Settings

UPSTREAM = "http://127.0.0.1:9"
TOKEN = "tok-3f9a8c7e"


@pytest.fixture
def settings():
    return Settings(api_url=UPSTREAM, connect_timeout=1, read_timeout=2)


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def upstream():
    """Intercepts every outgoing request; unmatched ones fail, unused mocks fail too."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def no_upstream():
    """Intercepts every outgoing request and fails the test if there is one."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
        assert len(mock.calls) == 0, "an upstream request was made"
