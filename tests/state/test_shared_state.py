"""The connector with REDIS_URL, in process: keyed calls answer 503 and send nothing while
Redis is down, keyless calls go on, /readyz tells, and everything recovers without a
restart. (Several instances over real HTTP: tests/e2e/test_instances.py.)"""

import pytest
import responses

from app import create_app
from tests.support.redisd import redisd_fixture  # noqa: F401  (the real redis-server fixture)
from tests.support.upstream import INSTAMSG, PUBLISH, publish

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

MESSAGES = INSTAMSG + "/api/v1/tenants/t-1/clients/c-1/messages"


@pytest.fixture
def shared(redisd, settings):
    from dataclasses import replace

    return create_app(replace(settings, redis_url=redisd.url)).test_client()


def test_a_replay_comes_from_redis(shared, redisd):
    with responses.RequestsMock() as mock:
        mock.post(MESSAGES, status=201, headers={"Location": "/m/messages/m-1"})
        first = publish(shared, "k-1", PUBLISH)
        again = publish(shared, "k-1", PUBLISH)
        assert len(mock.calls) == 1
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.data == first.data


def test_with_redis_down_keyed_calls_answer_503_and_send_nothing(shared, redisd):
    redisd.stop()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(MESSAGES, status=201, headers={"Location": "/m/messages/m-2"})
        keyed = publish(shared, "k-2", PUBLISH)
        assert len(mock.calls) == 0
        keyless = publish(shared, args=PUBLISH)
        assert len(mock.calls) == 1
    assert keyless.status_code == 200
    assert keyed.status_code == 503 and keyed.headers["Retry-After"] == "5"
    error = keyed.json["contextWrites"]["to"]
    assert error["status_code"] == "IDEMPOTENCY_UNAVAILABLE" and error["retryable"] is True
    ready = shared.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["status"] == "unavailable" and ready.json["store"] == "redis"
    assert "does not answer" in ready.json["failed"][0]

    redisd.start()  # the same port: no restart of the connector
    with responses.RequestsMock() as mock:
        mock.post(MESSAGES, status=201, headers={"Location": "/m/messages/m-3"})
        assert publish(shared, "k-2", PUBLISH).status_code == 200
    assert shared.get("/readyz").json == {"status": "ready", "store": "redis"}


def test_readyz_without_redis_checks_the_sqlite_file(client, settings, tmp_path):
    from dataclasses import replace

    assert client.get("/readyz").json == {"status": "ready", "store": "sqlite"}
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    broken = create_app(replace(settings, data_dir=str(blocked / "data"))).test_client()
    answer = broken.get("/readyz")
    assert answer.status_code == 503
    assert answer.json["failed"] == ["the idempotency store cannot be opened (NotADirectoryError)"]


def test_readyz_and_healthz_stay_open_with_api_keys(settings, nothing_sent):
    from dataclasses import replace

    locked = create_app(replace(settings, api_keys=("k1",))).test_client()
    assert locked.get("/readyz").status_code == 200
    assert locked.get("/healthz").status_code == 200
    assert locked.get("/blocks").status_code == 401
