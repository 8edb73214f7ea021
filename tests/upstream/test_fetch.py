"""uploadFile's file URL: public addresses only, redirects re-checked, size capped.

Only loopback servers are ever contacted. Private, link-local and metadata
addresses are tested against the address check itself, with a fake resolver
and every HTTP request intercepted, so no connection to them is possible."""

import base64

import pytest

from app import create_app
from connector.errors import InvalidFields
from connector.upstream.fetch import check_destination, public_address
from tests.support.loopback import serve
from tests.support.upstream import INSTAMSG, TOKEN

UPLOAD = INSTAMSG + "/api/v1/tenants/t/clients/c/files/a.bin"
ARGS = {"accessToken": TOKEN, "tenantId": "t", "clientId": "c", "filename": "a.bin"}

NOT_PUBLIC = [
    "127.0.0.1",
    "127.0.0.2",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "240.0.0.1",
    # IPv6 forms that carry a loopback or link-local IPv4 address: NAT64, 6to4, IPv4-compatible
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::1",
    "::7f00:1",
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_not_public(address):
    assert not public_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_public(address):
    assert public_address(address)


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_a_host_resolving_anywhere_private_is_refused(address):
    with pytest.raises(InvalidFields):
        check_destination("http://files.example/a", frozenset(), resolver=lambda h, p: [address])


def test_one_private_address_among_public_ones_is_enough_to_refuse():
    def resolver(host, port):
        return ["93.184.216.34", "10.0.0.1"]

    with pytest.raises(InvalidFields):
        check_destination("https://files.example/a", frozenset(), resolver=resolver)


def test_a_public_host_passes_and_the_allowlist_is_by_host_and_port():
    check_destination("https://files.example/a", frozenset(), resolver=lambda h, p: ["8.8.8.8"])
    check_destination("http://127.0.0.1:8000/a", frozenset({"127.0.0.1:8000"}))
    with pytest.raises(InvalidFields):
        check_destination("http://127.0.0.1:8001/a", frozenset({"127.0.0.1:8000"}))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a",
        "http://localhost/a",
        "http://127.0.0.2/a",
        "http://0.0.0.0/a",
        "http://[::1]/a",
        "http://2130706433/a",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/a",
        "file:///etc/passwd",
    ],
)
def test_upload_from_a_non_public_url_is_refused_before_any_request(
    url, nothing_sent, loopback_only
):
    app = create_app({"api_url": INSTAMSG})
    answer = app.test_client().post("/blocks/uploadFile", json={**ARGS, "file": url})
    assert loopback_only == []  # refused before any connection
    assert answer.status_code == 422
    assert answer.json["contextWrites"]["to"]["fields"] == ["file"]


@pytest.mark.slow
def test_upload_from_an_allowlisted_local_server(mocked, loopback_only):
    data = b"\x89PNG" + bytes(5000)
    mocked.post(UPLOAD, json={"ok": True})
    with serve({"/img.png": (200, {"Content-Type": "image/png"}, data)}) as (where, hits):
        mocked.add_passthru(f"http://{where}/")  # the file itself comes over a real socket
        app = create_app({"api_url": INSTAMSG, "upload_url_allowlist": frozenset({where})})
        answer = app.test_client().post(
            "/blocks/uploadFile", json={**ARGS, "file": f"http://{where}/img.png"}
        )
        sent = mocked.calls[-1].request.body
    assert answer.status_code == 200, answer.json
    assert hits == ["/img.png"]
    assert data in sent and b'name="uploadedfile"; filename="a.bin"' in sent


@pytest.mark.slow
def test_a_redirect_to_a_loopback_port_not_allowlisted_is_refused(nothing_sent, loopback_only):
    with serve({"/secret": (200, {}, b"internal")}) as (inner, inner_hits):
        moved = {"/go": (302, {"Location": f"http://{inner}/secret"}, b"")}
        with serve(moved) as (outer, outer_hits):
            for where in (inner, outer):  # both over real sockets, if ever asked
                nothing_sent.add_passthru(f"http://{where}/")
            app = create_app({"api_url": INSTAMSG, "upload_url_allowlist": frozenset({outer})})
            answer = app.test_client().post(
                "/blocks/uploadFile", json={**ARGS, "file": f"http://{outer}/go"}
            )
    assert answer.status_code == 422
    assert outer_hits == ["/go"] and inner_hits == []


@pytest.mark.slow
def test_a_file_over_the_upload_limit_is_refused(nothing_sent, loopback_only):
    with serve({"/big": (200, {}, b"x" * 5000)}) as (where, _):
        nothing_sent.add_passthru(f"http://{where}/")
        app = create_app(
            {
                "api_url": INSTAMSG,
                "upload_url_allowlist": frozenset({where}),
                "max_upload_bytes": 1000,
            }
        )
        answer = app.test_client().post(
            "/blocks/uploadFile", json={**ARGS, "file": f"http://{where}/big"}
        )
    assert answer.status_code == 413
    assert answer.json["contextWrites"]["to"]["status_code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.slow
def test_a_url_that_fails_is_the_callers_error(nothing_sent, loopback_only):
    with serve({}) as (where, _):
        nothing_sent.add_passthru(f"http://{where}/")
        app = create_app({"api_url": INSTAMSG, "upload_url_allowlist": frozenset({where})})
        answer = app.test_client().post(
            "/blocks/uploadFile", json={**ARGS, "file": f"http://{where}/missing"}
        )
    assert answer.status_code == 422
    assert "HTTP 404" in answer.json["contextWrites"]["to"]["status_msg"]


def test_base64_content_needs_no_fetch(mocked):
    mocked.post(UPLOAD, json={})
    app = create_app({"api_url": INSTAMSG})
    answer = app.test_client().post(
        "/blocks/uploadFile", json={**ARGS, "fileContent": base64.b64encode(b"hi").decode()}
    )
    assert answer.status_code == 200


def test_the_connection_goes_to_the_checked_address_no_second_lookup(monkeypatch, loopback_only):
    """DNS rebinding: the name is resolved once, checked, and the connection is pinned to
    that address; a later answer pointing at 127.0.0.1 is never asked for."""
    from connector.config import Settings
    from connector.upstream import fetch

    lookups = []

    def resolver(host, port):
        lookups.append(host)
        return ["93.184.216.34"] if len(lookups) == 1 else ["127.0.0.1"]

    monkeypatch.setattr(fetch, "resolve", resolver)
    with pytest.raises(InvalidFields):  # the guard refuses the public address: no packet
        fetch.fetch_file("http://files.example/a.bin", Settings())
    assert lookups == ["files.example"]
    assert loopback_only == [("93.184.216.34", 80)]
