"""What unit tests call InstaMsg by, and the call most multi-instance tests send.

``INSTAMSG`` is the base URL of every unit-test app (the ``settings`` fixture): no such host
exists, so only a responses mock answers it, and a request nothing was registered for fails
with ConnectionError before any socket is opened.

``FAKE`` and ``UPSTREAM`` are the recording loopback server of the modules not yet moved to
responses, and its URL: the server starts when a module first imports one of them, not
before (module ``__getattr__``, PEP 562).
"""

from functools import cache

INSTAMSG = "https://instamsg.test"
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


@cache
def recording_upstream():
    from tests.support.fake_upstream import FakeUpstream

    return FakeUpstream()


def __getattr__(name):
    if name == "FAKE":
        return recording_upstream()
    if name == "UPSTREAM":
        return recording_upstream().url
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
