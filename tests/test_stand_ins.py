"""The unit tests' stand-ins for InstaMsg hold what they promise: responses answers the
connector's own adapter (nothing registered means nothing leaves), and the loopback server
shows real socket behaviour."""

from dataclasses import replace

import pytest
import requests
import responses

from app import create_app
from connector.upstream.transport import UpstreamAdapter
from tests.support.loopback import Loopback
from tests.support.upstream import INSTAMSG, TOKEN

ARGS = {"accessToken": TOKEN, "id": "t-1"}
TENANT = "/api/v1/tenants/t-1"


def test_unit_test_apps_call_a_host_that_does_not_exist(settings):
    assert settings.api_url == INSTAMSG and INSTAMSG.endswith(".test")


def test_responses_answers_the_connectors_adapter_before_any_socket(settings):
    # A real server that would answer, were the request to reach it.
    with Loopback() as server:
        server.get(TENANT, json={"id": "t-1", "from": "the socket"})
        app = create_app(replace(settings, api_url=server.url))
        adapter = app.extensions["instamsg"].upstream.session.get_adapter(server.url)
        assert type(adapter) is UpstreamAdapter  # the adapter of every live call
        with responses.RequestsMock() as mock:
            mock.get(server.url + TENANT, json={"id": "t-1", "from": "the mock"})
            answer = app.test_client().post("/blocks/getSingleTenant", json=ARGS)
            assert len(mock.calls) == 1
        assert answer.json["contextWrites"]["to"] == {"id": "t-1", "from": "the mock"}
        assert server.calls == []


def test_a_request_nothing_was_registered_for_never_leaves(settings):
    with Loopback() as server:
        server.get(TENANT, json={"id": "t-1"})
        client = create_app(replace(settings, api_url=server.url, retries=0)).test_client()
        with responses.RequestsMock() as mock:
            answer = client.post("/blocks/getSingleTenant", json=ARGS)
            (refused,) = mock.calls  # recorded, and answered with ConnectionError
            assert isinstance(refused.response, requests.ConnectionError)
        assert answer.status_code == 502
        assert answer.json["contextWrites"]["to"]["status_code"] == "UPSTREAM_UNAVAILABLE"
        assert server.calls == []  # refused by the mock, not sent


def test_an_answer_registered_but_never_asked_for_fails_the_test():
    mock = responses.RequestsMock(assert_all_requests_are_fired=True)
    with pytest.raises(AssertionError, match="Not all requests have been executed"), mock:
        mock.get(INSTAMSG + TENANT, json={})


def test_in_order_answers_a_sequence_once_each(client, mocked_in_order):
    mocked_in_order.get(INSTAMSG + TENANT, status=503)
    mocked_in_order.get(INSTAMSG + TENANT, json={"id": "t-1"})
    answer = client.post("/blocks/getSingleTenant", json=ARGS)
    assert answer.json["contextWrites"]["to"] == {"id": "t-1"}
    assert [c.response.status_code for c in mocked_in_order.calls] == [503, 200]


def test_the_loopback_server_listens_only_once_started():
    server = Loopback()
    assert server.url == "" and server.server is None
    with server:
        server.get("/a", json={"ok": True})
        assert requests.get(server.url + "/a", timeout=5).json() == {"ok": True}
        assert server.connections == 1 and server.hits == ["/a"]
        assert server.calls[0].request.line == "GET /a HTTP/1.1"
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/a", timeout=5)


@pytest.mark.parametrize(
    "answer, raised",
    [
        ({"fault": "drop"}, requests.ConnectionError),
        ({"fault": "cut", "body": b"x" * 50}, requests.exceptions.ChunkedEncodingError),
        ({"delay": 0.5}, requests.ReadTimeout),
    ],
    ids=["drop", "cut", "slow"],
)
def test_the_loopback_servers_faults_are_what_a_client_sees(answer, raised, loopback):
    loopback.get("/a", **answer)
    with pytest.raises(raised):
        requests.get(loopback.url + "/a", timeout=(1, 0.2))


IMPORT_EVERY_TEST_MODULE = """
import gc, importlib, pathlib, socketserver, threading
names = sorted(
    ".".join(path.with_suffix("").parts)
    for path in pathlib.Path("tests").rglob("*.py")
    if path.name != "__init__.py"
)
for name in names:
    importlib.import_module(name)
servers = [o for o in gc.get_objects() if isinstance(o, socketserver.BaseServer)]
threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
print(len(names), len(servers), threads)
"""


def test_no_server_or_thread_is_started_when_the_tests_are_imported():
    """Issue 16: a server starts in a fixture, never at import (as pytest collects)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_TEST_MODULE],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    modules, servers, threads = run.stdout.strip().splitlines()[-1].split(" ", 2)
    assert int(modules) > 40
    assert (servers, threads) == ("0", "[]")
