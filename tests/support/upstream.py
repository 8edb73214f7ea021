"""The recording upstream every unit-test app calls (tests/support/fake_upstream.py), and the
call most multi-instance tests send."""

from tests.support.fake_upstream import FakeUpstream

FAKE = FakeUpstream()
UPSTREAM = FAKE.url
TOKEN = "tok-3f9a8c7e"
#: A publishMessage call for tenant t-1, client c-1 (the multi-instance and Redis tests).
PUBLISH = {
    "accessToken": TOKEN,
    "tenantId": "t-1",
    "clientId": "c-1",
    "id": "1",
    "type": "pub",
    "topic": "telemetry",
    "payload": "21.5C",
    "qos": 1,
}
