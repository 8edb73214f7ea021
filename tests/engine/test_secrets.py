"""Secret hygiene: a whole sandbox flow over HTTP, then every secret it used is looked
for in everything the server wrote (its log) and in every error it answered."""

import json

import pytest
import requests

from connector.upstream.outcomes import BODY_LIMIT, SAID_LIMIT
from tests.support.servers import gunicorn
from tests.support.upstream import INSTAMSG, LIVE_APP

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

    from connector import logs

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

    from connector import logs

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


# -- issue 21 item 6: InstaMsg's words are scrubbed first, then cut ------------------------

#: The connector's own managed token: 48 characters, none of them in the padding below.
MANAGED = "mt-4c1e9a2f5b3d8c6e0a4f1b9d2c7e5a3f8b6d0c4e2a9f1"
TOKEN_URL = "https://instamsg.test/oauth2/token"
TENANT_URL = "https://instamsg.test/api/v1/tenants/t-1"
#: How long a piece of a secret must be to count as shown (shorter ones occur by chance).
SHOWN = 6


def at(position: int, filler: str, echoed: str) -> str:
    """Padding that puts the echoed token's middle at ``position`` of the text it starts."""
    start = position - len(MANAGED) // 2 - (len(echoed) - len(MANAGED))
    return filler * start + echoed


def json_said(echoed):  # the sentence in status_msg, cut at SAID_LIMIT characters
    return {"json": {"message": at(SAID_LIMIT, "y", echoed)}}


def json_body(echoed):  # the JSON under upstream.body, cut at BODY_LIMIT characters of its text
    return {
        "json": {
            "detail": "see below",
            "trace": at(BODY_LIMIT - len('{"detail": "see below", "trace": "'), "z", echoed),
        }
    }


def text_said(echoed):  # a text body: its sentence is cut at SAID_LIMIT characters
    return {"body": at(SAID_LIMIT, "y", echoed), "content_type": "text/plain"}


def text_body(echoed):  # a text body is cut at BODY_LIMIT characters
    return {"body": at(BODY_LIMIT, "z", echoed), "content_type": "text/plain"}


ECHOES = [json_said, json_body, text_said, text_body]


def pieces(secret: str) -> list[str]:
    return [secret[i : i + SHOWN] for i in range(len(secret) - SHOWN + 1)]


def shown_pieces(text: str, secret: str) -> list[str]:
    return [piece for piece in pieces(secret) if piece in text]


def echoing(shape):
    """An InstaMsg that answers 400 repeating the Authorization header it was sent."""

    def answer(request):
        made = shape(request.headers["Authorization"])
        body = made.get("body") or json.dumps(made["json"])
        return 400, {"Content-Type": made.get("content_type", "application/json")}, body

    return answer


def call_over_http(app):
    answer = app.test_client().post("/blocks/getSingleTenant", json={**LIVE_APP, "id": "t-1"})
    return answer.status_code, answer.get_data(as_text=True)


def call_in_the_cli(app):
    args = ["blocks", "call", "getSingleTenant", "id=t-1"] + [
        f"{k}={v}" for k, v in LIVE_APP.items()
    ]
    done = app.test_cli_runner().invoke(args=args)
    return json.loads(done.stdout)["contextWrites"]["to"]["upstream"]["status"], done.stdout


@pytest.mark.parametrize("face", [call_over_http, call_in_the_cli])
@pytest.mark.parametrize("shape", ECHOES)
def test_no_piece_of_the_managed_token_survives_where_instamsg_text_is_cut(
    app, mocked, face, shape
):
    mocked.post(TOKEN_URL, json={"access_token": MANAGED, "expires_in": 3600})
    mocked.add_callback("GET", TENANT_URL, callback=echoing(shape))
    status, text = face(app)
    assert status == 400
    assert shown_pieces(text, MANAGED) == []
    error = json.loads(text)["contextWrites"]["to"]
    said = error["status_msg"].partition("InstaMsg said: ")[2]
    body = error["upstream"]["body"]
    # The cuts still hold: the scrubbed words are cut to the same limits as before.
    assert len(said) <= SAID_LIMIT
    assert len(body if isinstance(body, str) else json.dumps(body)) <= BODY_LIMIT
    assert "[redact" in said + (body if isinstance(body, str) else json.dumps(body))


A = "tok-aaaa-1111-bbbb"
B = "bbbb-2222-cccc-ttt"  # begins where A ends: the two overlap in "tok-aaaa-1111-bbbb-2222..."

SCRUBBED = [
    # (the call's secrets, InstaMsg's text, what the caller reads)
    ([A, B], "see tok-aaaa-1111-bbbb-2222-cccc-ttt here", "see [redacted] here"),
    ([A, B], "tok-aaaa-1111-bbbb-2222-cccc-ttt", "[redacted]"),
    ([A], "tok-aaaa-1111-bbbbtok-aaaa-1111-bbbb", "[redacted][redacted]"),
    ([A, "s3cr3t"], "s3cr3t tok-aaaa-1111-bbbb, s3cr3t.", "[redacted] [redacted], [redacted]."),
    ([A, "x" + A + "y"], "1 xtok-aaaa-1111-bbbby 2", "1 [redacted] 2"),
    (["", A], "nothing here", "nothing here"),
    ([A], "", ""),
]


@pytest.mark.parametrize(("secrets", "text", "shown"), SCRUBBED)
def test_secrets_that_overlap_are_redacted_as_one_stretch(secrets, text, shown):
    from connector.engine.redaction import scrub

    assert scrub(text, secrets) == shown


def test_the_names_in_instamsgs_body_are_scrubbed_too_and_the_envelopes_are_not(app, mocked):
    mocked.post(TOKEN_URL, json={"access_token": MANAGED, "expires_in": 3600})
    echoed = {"headers": {"Bearer " + MANAGED: "seen"}, "message": "no"}
    mocked.get(TENANT_URL, status=403, json=echoed)
    status, text = call_over_http(app)
    error = json.loads(text)["contextWrites"]["to"]
    assert error["upstream"] == {
        "status": 403,
        "body": {"headers": {"Bearer [redacted]": "seen"}, "message": "no"},
    }
    assert shown_pieces(text, MANAGED) == []


def test_a_token_is_scrubbed_as_a_query_string_writes_it_too(app, mocked):
    token = "abc/def+ghi=jkl0"  # InstaMsg's invalidate_token takes it in the query
    query = "abc%2Fdef%2Bghi%3Djkl0"
    mocked.post(
        TOKEN_URL.replace("token", "invalidate_token"),
        status=400,
        json={"message": f"bad token in /oauth2/invalidate_token?access_token={query}"},
    )
    answer = app.test_client().post(
        "/blocks/invalidateAccessToken", json={**LIVE_APP, "token": token}
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "access_token=[redacted]" in text
    assert query not in text and token not in text


# InstaMsg's text bodies are now read whole (to be scrubbed before the cut): finding their
# sentence must read them once. A pattern that starts over at each "<" without an end, as the
# old title and tag patterns did, would take many minutes over a megabyte.
WHOLE_PAGES = [
    (">" + "<" * 2**20, ">" + "<" * (SAID_LIMIT - 1)),
    ("<title>" * (2**20 // 7), ""),  # all tags, no text: nothing said
    ("<title" * (2**20 // 6), "<title" * (SAID_LIMIT // len("<title"))),
    ("<p>" + "bad " * 2**18 + "</p>", "bad " * (SAID_LIMIT // len("bad "))),
]


@pytest.mark.parametrize(("page", "said"), WHOLE_PAGES, ids=["lt", "title-open", "title", "p"])
def test_the_sentence_of_a_whole_text_body_is_found_in_one_read(client, mocked, page, said):
    mocked.get(TENANT_URL, status=400, body=page, content_type="text/html")
    answer = client.post(
        "/blocks/getSingleTenant", json={"accessToken": "tok-3f9a8c7e", "id": "t-1"}
    )
    error = answer.json["contextWrites"]["to"]
    assert error["status_msg"].partition("InstaMsg said: ")[2] == said
    assert error["upstream"]["body"] == page[:BODY_LIMIT]


WRITTEN = [
    # (a secret, how an echo of the request writes it)
    ("abc/def+ghi=jkl0", "abc%2Fdef%2Bghi%3Djkl0"),  # a query string
    ('pass"word\\12', 'pass\\"word\\\\12'),  # a JSON string
    ("pässwörd-1234", "p\\u00e4ssw\\u00f6rd-1234"),  # a JSON string written in ASCII
    # found by the adversarial pass:
    ("abc/def+ghi=jkl0", "abc%2fdef%2bghi%3djkl0"),  # a query string, lower-case escapes
    ("Ab3/Zx9+Qw7/Kk1", "Ab3\\/Zx9+Qw7\\/Kk1"),  # JSON with "/" escaped (PHP's json_encode)
    ("pass<word>2024-very-secret", "pass 2024-very-secret"),  # an HTML page's sentence
    ("two  spaces-1234", "two spaces-1234"),  # the same, its spaces joined
]


@pytest.mark.parametrize(("secret", "echoed"), WRITTEN)
def test_a_secret_is_scrubbed_as_an_echo_of_the_request_writes_it(secret, echoed):
    from connector.engine.redaction import scrub, secret_values
    from connector.engine.registry import REGISTRY

    secrets = secret_values(REGISTRY.get("createClient"), {"gsmPassword": secret})
    assert scrub(f"you sent [{echoed}]", secrets) == "you sent [[redacted]]"


def test_a_secret_pasted_as_an_argument_name_is_not_repeated(app, mocked, capfd):
    """curl -d "accessToken=$T&$T": the second is a name (found by the adversarial pass)."""
    token = "tok-pasted-7f3c9a1e55"
    mocked.get(INSTAMSG + "/api/v1/tenants", json=[])
    answer = app.test_client().post(
        "/blocks/getTenants",
        data=f"accessToken={token}&{token}",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 200 and answer.json["warnings"]
    assert token not in answer.get_data(as_text=True)
    assert token not in capfd.readouterr().err
