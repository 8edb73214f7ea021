"""Secret hygiene: a whole sandbox flow over HTTP, then every secret it used is looked
for in everything the server wrote (its log) and in every error it answered."""

import json

import pytest
import requests

from tests.support.servers import gunicorn

SECRETS = {
    "clientSecret": "demo-secret",
    "provisioningKey": "PrOvK3y9",
    "gsmPassword": "apn-pass-7731",
    "gsmSimPin": "8642",
}


@pytest.mark.slow
def test_no_secret_reaches_the_log_or_an_error(tmp_path):
    env = {"INSTAMSG_SANDBOX": "1", "INSTAMSG_DATA_DIR": str(tmp_path)}
    seen_secrets = dict(SECRETS)
    errors = []
    with gunicorn(env, workers=2) as (base, process):

        def call(block, expect=200, **args):
            answer = requests.post(f"{base}/blocks/{block}", json={"args": args}, timeout=10)
            assert answer.status_code == expect, answer.text
            if answer.json()["callback"] == "error":
                errors.append(answer.text)
            return answer.json()["contextWrites"]["to"]

        app = {"clientKey": "demo-key", "clientSecret": SECRETS["clientSecret"]}
        token = call("getAccessToken", **app)["access_token"]
        seen_secrets["accessToken"] = token
        call("getAccessToken", 401, clientKey="demo-key", clientSecret="wrong-secret-55")
        seen_secrets["wrongSecret"] = "wrong-secret-55"
        tenant = call("createTenant", accessToken=token, name="T", maxClients=5, maxMessages=9)[
            "id"
        ]
        client = call(
            "createClient",
            accessToken=token,
            tenantId=tenant,
            type="user",
            name="ops",
            provisioningId="ops-1",
            provisioningKey=SECRETS["provisioningKey"],
            gsmPassword=SECRETS["gsmPassword"],
            gsmSimPin=SECRETS["gsmSimPin"],
            pubTopics="a",
        )["id"]
        auth = call("getClientAuthToken", accessToken=token, tenantId=tenant, clientId=client)
        seen_secrets["clientAuthToken"] = auth["auth_token"]
        reset = call("updateClientAuthToken", accessToken=token, tenantId=tenant, clientId=client)
        seen_secrets["resetAuthToken"] = reset["auth_token"]
        # errors that carry secrets in their arguments
        call(
            "createClient",
            422,
            accessToken=token,
            tenantId=tenant,
            type="robot",
            name="x",
            provisioningId="p",
            provisioningKey="bad key!",
            gsmPassword=SECRETS["gsmPassword"],
        )
        call(
            "publishMessage",
            403,
            accessToken=token,
            tenantId=tenant,
            clientId=client,
            id=1,
            type="pub",
            topic="not-allowed",
            payload="p",
            qos=1,
        )
        call("getTenants", **app)  # a managed token
        call("invalidateAccessToken", **app, token=token)
        call("getTenants", 401, accessToken=token)
        log = process.output()
    assert '"msg":"request"' in log and "SANDBOX MODE" in log
    for name, secret in seen_secrets.items():
        assert secret not in log, f"{name} was written to the log"
        for error in errors:
            assert secret not in error, f"{name} came back in an error"
    assert "Traceback" not in log


def test_library_log_lines_lose_any_url_query(capfd):
    import logging

    from connector.server import logs

    logs.setup()
    logging.getLogger("urllib3.connectionpool").warning(
        "Failed to parse headers (url=%s): %s",
        "http://api.test/oauth2/invalidate_token?access_token=tok-secret-77",
        "oops",
    )
    err = capfd.readouterr().err
    assert "tok-secret-77" not in err
    assert '"msg": "Failed to parse headers (url=http://api.test/oauth2/invalidate_token' in err
    assert "?[redacted]" in err


def test_the_access_line_is_stamped_with_the_time_in_utc_to_the_millisecond(capfd, monkeypatch):
    from datetime import UTC, datetime

    from connector.server import logs

    # Across a second boundary, and whole milliseconds that float arithmetic would shave.
    moments_ns = [1795705128_998_000_000, 1795705128_999_999_999, 1795705129_000_400_000]
    for moment in moments_ns:
        monkeypatch.setattr(logs.time, "time_ns", lambda moment=moment: moment)
        logs.access("r", "POST", "/blocks/x", 200, 1.0, "x", "SUCCESS", 200)
    stamps = [json.loads(line)["ts"] for line in capfd.readouterr().err.splitlines()]
    expected = [
        datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        + f".{ns // 10**6 % 1000:03d}Z"
        for ns in moments_ns
    ]
    assert stamps == expected
    assert stamps[0].endswith(":48.998Z") and stamps[2].endswith(":49.000Z")
