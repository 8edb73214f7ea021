"""The playground page at ``/``: served with its assets under a strict CSP, drawn from the
manifest, and driven end to end in a real Chromium (tests/support/browser.py)."""

import json
import re
import shlex
from pathlib import Path

import pytest
import requests

from app import create_app
from connector.engine.registry import REGISTRY
from connector.hooks.schemes import SCHEMES
from connector.hooks.service import RESPOND
from connector.web import playground
from tests.support.browser import browser_page, copy_screenshot, expect, serve

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

STATIC = Path(playground.__file__).parent / "static" / "playground"
ASSETS = sorted(path.name for path in STATIC.iterdir())
KEY = "pk-7d41c0aa"
DEMO = {"clientKey": "demo-key", "clientSecret": "demo-secret"}


def make_app(tmp_path, **overrides):
    app = create_app({"sandbox": True, "data_dir": str(tmp_path), **overrides})
    if "playground" not in app.blueprints:
        app.register_blueprint(playground.bp)
    return app


@pytest.fixture
def sandbox_app(tmp_path):
    return make_app(tmp_path)


# -- served by Flask ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, mimetype",
    [
        ("/", "text/html"),
        ("/playground/static/playground.js", "text/javascript"),
        ("/playground/static/playground.css", "text/css"),
        ("/playground/static/favicon.svg", "image/svg+xml"),
        ("/playground/config.json", "application/json"),
    ],
)
def test_the_page_and_its_assets_are_served_under_a_same_origin_csp(sandbox_app, path, mimetype):
    reply = sandbox_app.test_client().get(path)
    assert reply.status_code == 200
    assert reply.mimetype == mimetype
    policy = reply.headers["Content-Security-Policy"]
    assert policy.split(";")[0] == "default-src 'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_every_asset_the_page_names_is_served(sandbox_app):
    client = sandbox_app.test_client()
    html = client.get("/").get_data(as_text=True)
    named = re.findall(r'(?:src|href)="(/playground/[^"]+)"', html)
    assert {"/playground/static/playground.js", "/playground/static/playground.css"} <= set(named)
    for path in named:
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("asset", ASSETS)
def test_no_asset_reaches_outside_this_origin(asset):
    text = (STATIC / asset).read_text()
    # An SVG's xmlns names a namespace; it is never fetched.
    text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}|@import", text, re.I)
    assert not re.search(r"\burl\(", text)  # CSS url(), not copyCurl()


def test_the_page_has_no_inline_script_or_style():
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == [
        '<script src="/playground/static/playground.js" defer>'
    ]
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)


def test_the_script_never_writes_html():
    script = (STATIC / "playground.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_the_page_draws_blocks_from_the_manifest_not_its_own_html():
    html = (STATIC / "index.html").read_text()
    script = (STATIC / "playground.js").read_text()
    assert html.count("<option") == 1  # "Loading the manifest…", replaced by the script
    assert '<label for="block">Block</label>' in html and '<select id="block"' in html
    assert "/manifest.json" in script
    # getAccessToken is named once, in the note about its token; no other block is.
    named = {name for name in REGISTRY.names() if re.search(rf"\b{name}\b", html + script)}
    assert named <= {"getAccessToken"}


@pytest.mark.parametrize(
    "overrides, facts",
    [
        ({}, {"sandbox": True, "api_keys": False, "demo": DEMO}),
        ({"api_keys": (KEY,)}, {"sandbox": True, "api_keys": True, "demo": DEMO}),
        ({"sandbox_apps": {"demo-key": "changed"}}, {"sandbox": True, "api_keys": False}),
        ({"sandbox": False}, {"sandbox": False, "api_keys": False}),
    ],
)
def test_config_says_sandbox_and_api_keys_and_never_a_key(tmp_path, overrides, facts):
    reply = make_app(tmp_path, **overrides).test_client().get("/playground/config.json")
    assert reply.status_code == 200
    hooks = {"schemes": list(SCHEMES), "respond": list(RESPOND)}  # the hooks panel's choices
    assert reply.json == {**facts, "hooks": hooks}
    assert KEY not in reply.get_data(as_text=True)


def test_with_api_keys_the_page_loads_without_one_and_the_manifest_does_not(tmp_path):
    client = make_app(tmp_path, api_keys=(KEY,)).test_client()
    for path in ["/", "/playground/config.json", "/playground/static/playground.js"]:
        assert client.get(path).status_code == 200, path
    assert client.get("/manifest.json").status_code == 401
    assert client.get("/manifest.json", headers={"X-API-Key": KEY}).status_code == 200


# -- in a real browser --------------------------------------------------------------------


def result_of(page):
    """The Result region's status line and envelope, once a call has answered."""
    expect(page.locator("#status")).to_have_text(re.compile(r"^HTTP "))
    region = page.get_by_role("region", name="Result")
    status = region.get_by_role("status").inner_text()
    return status, json.loads(page.locator("#result").text_content())


def choose(page, block):
    page.get_by_label("Block", exact=True).select_option(block)
    expect(page.locator("#block")).to_have_value(block)
    expect(page.locator("#args")).to_be_visible()
    # A new call's answer is waited for by its status line: clear the last one.
    page.evaluate("document.getElementById('status').textContent = ''")


def field(page, name):
    return page.get_by_label(name, exact=True)


def run(page):
    page.get_by_role("button", name="Run", exact=True).click()
    return result_of(page)


def test_a_whole_flow_by_clicks_and_typing(tmp_path, sandbox_app):
    with serve(sandbox_app) as base, browser_page(base) as (page, refused):
        page.goto(base + "/")
        blocks = page.get_by_label("Block", exact=True)
        expect(blocks.locator("option")).to_have_count(30)
        assert blocks.locator("option").all_inner_texts() == list(REGISTRY.names())
        assert page.get_by_role("heading", name="Sandbox mode").is_visible()

        # getAccessToken, with the demo credentials the sandbox banner offers.
        choose(page, "getAccessToken")
        assert "access token" in page.locator("#description").inner_text()
        page.get_by_role("button", name="Use demo credentials").click()
        assert field(page, "clientKey").input_value() == "demo-key"
        assert field(page, "clientSecret").get_attribute("type") == "password"
        status, envelope = run(page)
        assert status.startswith("HTTP 200") and "success" in status
        token = envelope["contextWrites"]["to"]["access_token"]

        # createTenant: the token is offered; the name carries markup, shown as text.
        choose(page, "createTenant")
        assert field(page, "accessToken").input_value() == token
        field(page, "name").fill("<b>x</b>")
        field(page, "maxClients").fill("5")
        field(page, "maxMessages").fill("100")
        status, envelope = run(page)
        assert status.startswith("HTTP 200")
        tenant = envelope["contextWrites"]["to"]
        assert tenant["name"] == "<b>x</b>" and tenant["max_clients"] == 5
        assert '"name": "<b>x</b>"' in page.locator("#result").inner_text()
        assert page.locator("#result-section b").count() == 0

        # createClient with pubTopics, run from the keyboard (Ctrl+Enter in a field); the
        # tenant createTenant made is carried over, like the token.
        choose(page, "createClient")
        assert field(page, "tenantId").input_value() == tenant["id"]
        field(page, "type").select_option("device")
        field(page, "name").fill("thermostat")
        field(page, "pubTopics").fill("devices/out, devices/alerts")
        field(page, "provisioningId").fill(f"prov-{tmp_path.name}")
        field(page, "provisioningId").press("Control+Enter")
        status, envelope = result_of(page)
        assert status.startswith("HTTP 200")
        client = envelope["contextWrites"]["to"]
        assert client["pub_topics"] == ["devices/out", "devices/alerts"]

        # publishMessage: a markup payload, then the same call as curl.
        choose(page, "publishMessage")
        assert field(page, "tenantId").input_value() == tenant["id"]
        assert field(page, "clientId").input_value() == client["id"]
        field(page, "id").fill("1")
        field(page, "type").select_option("pub")
        field(page, "topic").fill("devices/out")
        field(page, "payload").fill("<b>x</b>")
        field(page, "qos").select_option("1")
        status, envelope = run(page)
        assert status.startswith("HTTP 200")
        assert envelope["contextWrites"]["to"] == {"messageId": "1"}
        page.get_by_role("button", name="Copy as curl").click()
        command = page.get_by_role("region", name="curl").locator("pre").inner_text()

        # getMessages lists the message; its payload is text in the Result region.
        choose(page, "getMessages")
        assert field(page, "clientId").input_value() == client["id"]
        status, envelope = run(page)
        assert status.startswith("HTTP 200")
        messages = envelope["contextWrites"]["to"]
        assert [m["payload"] for m in messages] == ["<b>x</b>"]
        assert '"payload": "<b>x</b>"' in page.locator("#result").inner_text()
        assert page.locator("#result-section b").count() == 0

        assert page.get_by_text("is prefilled in accessToken").is_visible()
        page.evaluate("window.scrollTo(0, 0)")
        shot = tmp_path / "playground.png"
        page.screenshot(path=str(shot), full_page=True)
        copy_screenshot(shot)
        assert page.problems == [] and refused == []

    # The curl command is the call the page made: replayed, it publishes message 2.
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:5] == ["curl", "-sS", "-X", "POST", f"{base}/blocks/publishMessage"]
    assert argv[5:8] == ["-H", "Content-Type: application/json", "--data-raw"]
    args = json.loads(argv[8])
    assert args["accessToken"] == token and args["payload"] == "<b>x</b>" and args["qos"] == 1
    with serve(sandbox_app) as base:
        reply = requests.post(f"{base}/blocks/publishMessage", json={**args, "id": 2}, timeout=10)
    assert reply.json()["contextWrites"]["to"] == {"messageId": "2"}


def expected_input(arg):
    """The control the page draws for an argument, from its manifest type."""
    if arg.get("options") or (arg["type"] == "Boolean" and not arg["required"]):
        return "select", None  # an optional switch: not sent, true or false
    return {
        "credentials": ("input", "password"),
        "Number": ("input", "number"),
        "Boolean": ("input", "checkbox"),
        "Datepicker": ("input", "datetime-local"),
        "JSON": ("textarea", None),
        "Map": ("textarea", None),
        "Array": ("textarea", None),
        "File": ("input", "file"),
    }.get(arg["type"], ("input", "text"))


DRAWN = """() => [...document.querySelectorAll('#arg-list [name]')].map(input => ({
    label: document.querySelector(`label[for="${input.id}"]`).textContent,
    tag: input.tagName.toLowerCase(),
    type: input.tagName === 'INPUT' ? input.type : null,
    required: input.getAttribute('aria-required') === 'true',
    options: input.tagName === 'SELECT' ? [...input.options].map(o => o.value) : null,
}))"""


def test_every_block_is_drawn_from_its_manifest_entry(sandbox_app):
    entries = sandbox_app.test_client().get("/manifest.json").json["blocks"]
    with serve(sandbox_app) as base, browser_page(base) as (page, refused):
        page.goto(base + "/")
        for entry in entries:
            choose(page, entry["name"])
            assert page.locator("#description").inner_text() == entry["description"]
            drawn = page.evaluate(DRAWN)
            assert [d["label"] for d in drawn] == [a["name"] for a in entry["args"]]
            for arg, control in zip(entry["args"], drawn, strict=True):
                assert (control["tag"], control["type"]) == expected_input(arg), arg
                assert control["required"] == arg["required"], arg
                if arg.get("options"):
                    assert control["options"][1:] == [str(o) for o in arg["options"]]
        assert page.problems == [] and refused == []


def test_an_optional_switch_goes_back_to_not_sent_and_says_its_default_once(sandbox_app):
    """publishMessage's save: InstaMsg's default (true) applies until a value is chosen, and
    choosing "not sent" again leaves it out of the call once more."""

    def sent(page):
        page.get_by_role("button", name="Copy as curl").click()
        command = page.get_by_role("region", name="curl").locator("pre").inner_text()
        argv = shlex.split(command.replace("\\\n", " "))
        return json.loads(argv[argv.index("--data-raw") + 1])

    with serve(sandbox_app) as base, browser_page(base) as (page, refused):
        page.goto(base + "/")
        choose(page, "publishMessage")
        save = field(page, "save")
        assert save.input_value() == ""
        hint = page.locator("#" + save.get_attribute("aria-describedby"))
        assert hint.inner_text().count("Default") == 1 and "Default: true." in hint.inner_text()
        assert "save" not in sent(page)
        save.select_option("false")
        assert sent(page)["save"] is False
        save.select_option("")
        assert "save" not in sent(page)
        assert page.problems == [] and refused == []


def test_json_is_checked_before_sending_and_a_file_goes_as_multipart(tmp_path, sandbox_app):
    upload = tmp_path / "notes.txt"
    upload.write_text("hello from the playground\n")
    with serve(sandbox_app) as base, browser_page(base) as (page, refused):
        page.goto(base + "/")
        expect(page.get_by_label("Block", exact=True)).to_be_enabled()
        choose(page, "getAccessToken")
        page.get_by_role("button", name="Use demo credentials").click()
        run(page)
        choose(page, "createTenant")
        field(page, "name").fill("files")
        field(page, "maxClients").fill("2")
        field(page, "maxMessages").fill("10")
        tenant = run(page)[1]["contextWrites"]["to"]["id"]
        choose(page, "createClient")
        for name, value in [("tenantId", tenant), ("name", "cam"), ("provisioningId", "p-f")]:
            field(page, name).fill(value)
        field(page, "type").select_option("device")
        client = run(page)[1]["contextWrites"]["to"]["id"]

        choose(page, "updateClientConfig")
        field(page, "tenantId").fill(tenant)
        field(page, "clientId").fill(client)
        field(page, "config").fill('{"interval": ')
        assert "Not valid JSON" in page.get_by_role("alert").filter(has_text="JSON").inner_text()
        page.get_by_role("button", name="Run", exact=True).click()
        assert page.locator("#status").text_content() == ""  # nothing was sent
        assert field(page, "config").evaluate("el => el === document.activeElement")
        field(page, "config").fill('{"interval": 30}')
        status, envelope = run(page)
        assert status.startswith("HTTP 200"), envelope

        choose(page, "uploadFile")
        field(page, "tenantId").fill(tenant)
        field(page, "clientId").fill(client)
        field(page, "filename").fill("notes.txt")
        field(page, "file").set_input_files(str(upload))
        page.get_by_role("button", name="Copy as curl").click()
        command = page.locator("#curl").inner_text()
        status, envelope = run(page)
        assert status.startswith("HTTP 200"), envelope
        assert page.problems == [] and refused == []
    assert "-F 'file=@notes.txt'" in command and "--form-string 'filename=notes.txt'" in command


def test_a_block_runs_from_the_keyboard_and_an_error_shows_its_status(sandbox_app):
    with serve(sandbox_app) as base, browser_page(base) as (page, refused):
        page.goto(base + "/#createTenant")
        expect(page.locator("#block")).to_have_value("createTenant")
        # By keyboard: Tab from the block list to its first argument, Enter runs.
        page.get_by_label("Block", exact=True).focus()
        page.keyboard.press("Tab")
        expect(field(page, "accessToken")).to_be_focused()
        page.keyboard.press("Enter")
        status, envelope = result_of(page)
        assert status.startswith("HTTP 422") and "error" in status
        assert envelope["contextWrites"]["to"]["status_code"] == "REQUIRED_FIELDS"
        assert page.get_by_role("region", name="Result").get_attribute("data-callback") == "error"
        # The arguments the error names are marked on the form; the others are not.
        named = envelope["contextWrites"]["to"]["fields"]
        assert "name" in named and "description" not in named
        assert field(page, "name").get_attribute("aria-invalid") == "true"
        assert field(page, "description").get_attribute("aria-invalid") == "false"


def test_with_api_keys_the_page_asks_for_the_key_and_keeps_it_in_session_storage(tmp_path):
    app = make_app(tmp_path, api_keys=(KEY,))
    with serve(app) as base, browser_page(base) as (page, refused):
        page.goto(base + "/")
        key = page.get_by_label("API key", exact=True)
        key.wait_for()
        assert key.get_attribute("type") == "password"
        assert page.get_by_label("Block", exact=True).is_disabled()
        key.fill(KEY)
        key.press("Enter")
        expect(page.locator("#block option")).to_have_count(30)
        stored = page.evaluate(
            "[sessionStorage.getItem('instamsg-playground.apiKey'), localStorage.length, "
            "document.cookie]"
        )
        assert stored == [KEY, 0, ""]

        choose(page, "getAccessToken")
        page.get_by_role("button", name="Use demo credentials").click()
        status, _ = run(page)
        assert status.startswith("HTTP 200")
        page.get_by_role("button", name="Copy as curl").click()
        command = page.locator("#curl").inner_text()
        assert '-H "X-API-Key: $CONNECTOR_API_KEY"' in command and KEY not in command

        # A refused key: the page asks again.
        page.evaluate("sessionStorage.setItem('instamsg-playground.apiKey', 'wrong')")
        status, _ = run(page)
        assert status.startswith("HTTP 401")
        assert "refused" in page.locator("#key-status").inner_text()
        assert page.problems == [] or all("401" in p for p in page.problems)
        assert refused == []


def test_extra_manifest_keys_are_tolerated_and_used_where_they_help(sandbox_app):
    """Keys another part of issue 9 adds (default, example, oneOf, outputs), and the Map and
    Array types no block uses yet, drawn from a manifest served in place of the real one."""
    manifest = sandbox_app.test_client().get("/manifest.json").json
    entry = next(b for b in manifest["blocks"] if b["name"] == "createTenant")
    entry["oneOf"] = [["accessToken"], ["clientKey", "clientSecret"]]
    entry["outputs"] = {"id": {"type": "String", "example": "t1"}}
    for arg in entry["args"]:
        if arg["name"] == "maxClients":
            arg.update(default=10, example=10, minimum=1)
        if arg["name"] == "description":
            arg.update(example="Sensors of hall 3", nullable=True)
    entry["args"] += [
        {"name": "where", "type": "Map", "required": False, "info": "A place."},
        {"name": "items", "type": "Array", "required": False, "info": "Rows."},
        {"name": "kind", "type": "Select", "required": False, "info": "No options listed."},
    ]
    body = json.dumps(manifest)
    with serve(sandbox_app) as base, browser_page(base) as (page, refused):
        page.route(
            f"{base}/manifest.json",
            lambda route: route.fulfill(body=body, content_type="application/json"),
        )
        page.goto(base + "/#createTenant")
        expect(page.locator("#block")).to_have_value("createTenant")
        expect(page.locator("#one-of")).to_have_text(
            "Give one of: accessToken, or clientKey and clientSecret."
        )
        assert "Default: 10." in page.locator(".field-number").first.inner_text()
        assert field(page, "description").get_attribute("placeholder") == "e.g. Sensors of hall 3"
        drawn = {d["label"]: (d["tag"], d["type"]) for d in page.evaluate(DRAWN)}
        assert drawn["where"] == drawn["items"] == ("textarea", None)
        assert drawn["kind"] == ("input", "text")
        field(page, "where").fill("51.5,-0.12")  # a Map may be "lat,lng"
        assert field(page, "where").get_attribute("aria-invalid") == "false"
        field(page, "items").fill("[{")
        assert field(page, "items").get_attribute("aria-invalid") == "true"
        assert page.problems == [] and refused == []
