"""What unit tests call InstaMsg by, and the call most multi-instance tests send.

``INSTAMSG`` is the base URL of every unit-test app (the ``settings`` fixture): no such host
exists, so only a responses mock answers it, and a request nothing was registered for fails
with ConnectionError before any socket is opened. Tests that need a real upstream server
(another process calls it, or only a socket shows the behaviour) start a ``Loopback``
(tests/support/loopback.py) in a fixture.
"""

INSTAMSG = "https://instamsg.test"
TOKEN = "tok-3f9a8c7e"
#: The sandbox's demo app: the clientKey and clientSecret the sandbox hands out tokens for
#: (a responses mock takes any).
APP = {"clientKey": "demo-key", "clientSecret": "demo-secret"}
#: A made-up app of a live account, on purpose unlike the sandbox's: its secret must not be
#: mistaken for a demo value where a test looks for it in logs and answers.
LIVE_APP = {"clientKey": "app-key-5e2c", "clientSecret": "app-secret-91d0"}
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

#: The keyed publish the Idempotency-Key tests send (credentials and payload are each test's).
VALVE = {"tenantId": "t", "clientId": "c", "id": 7, "type": "pub", "topic": "valves", "qos": 2}
#: That publish on an access token, as the in-process key tests send it.
KEYED_PUBLISH = {"accessToken": TOKEN, **VALVE, "payload": "open"}


def publish(client, key=None, args=KEYED_PUBLISH, path="/blocks/publishMessage"):
    """A publishMessage call through a Flask test ``client``, under the Idempotency-Key
    ``key`` when one is given. (Over real HTTP: tests/support/faultkit.py's publish_over_http.)"""
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(path, json=args, headers=headers)
