"""The connector under gunicorn, over real HTTP on loopback, as `make run` starts it."""

import pytest
import requests

from tests.support.loopback import serve
from tests.support.servers import gunicorn
from tests.support.upstream import TOKEN

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow


def live(where):
    return {"INSTAMSG_API_URL": f"http://{where}", "INSTAMSG_SANDBOX": "0"}


def test_blocks_over_real_http_against_a_loopback_upstream():
    routes = {"/api/v1/tenants/t-1": (200, {"Content-Type": "application/json"}, b'{"id": "t-1"}')}
    with serve(routes) as (where, hits), gunicorn(live(where)) as (base, _):
        ok = requests.post(
            base + "/blocks/getSingleTenant",
            json={"args": {"accessToken": TOKEN, "id": "t-1"}},
            headers={"X-Request-Id": "e2e-1"},
            timeout=5,
        )
        rapid = requests.post(base + "/api/InstaMsg/getSingleTenant", json={}, timeout=5)
        missing = requests.post(
            base + "/blocks/getSingleTenant",
            json={"accessToken": TOKEN, "id": "t-2"},
            timeout=5,
        )
        manifest = requests.get(base + "/manifest.json", timeout=5).json()
    assert ok.status_code == 200 and ok.headers["X-Request-Id"] == "e2e-1"
    assert ok.json() == {"callback": "success", "contextWrites": {"to": {"id": "t-1"}}}
    assert rapid.status_code == 200
    assert rapid.json()["contextWrites"]["to"]["status_code"] == "REQUIRED_FIELDS"
    assert missing.status_code == 404
    assert missing.json()["contextWrites"]["to"]["upstream"]["status"] == 404
    assert len(manifest["blocks"]) == 30
    assert hits == ["/api/v1/tenants/t-1", "/api/v1/tenants/t-2"]


def test_an_unreachable_upstream_is_reported_not_crashed():
    with serve({}) as (where, _):
        pass  # the port is closed again: nothing listens there now
    with gunicorn(live(where)) as (base, _):
        answer = requests.post(base + "/blocks/getTenants", json={"accessToken": TOKEN}, timeout=10)
    assert answer.status_code == 502
    assert answer.json()["contextWrites"]["to"]["status_code"] == "UPSTREAM_UNAVAILABLE"
