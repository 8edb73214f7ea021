"""The playground's hooks panel in a real Chromium: a hook made from a block's form shows its
URL and secret once, and a pasted sample payload shows the arguments it maps to, with nothing
sent to InstaMsg."""

import json

import pytest
import requests

from app import create_app
from tests.support.browser import browser_page, expect, serve

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow


def test_a_hook_is_made_from_the_form_and_a_sample_is_mapped(tmp_path):
    app = create_app({"sandbox": True, "data_dir": str(tmp_path)})
    with serve(app) as base, browser_page(base) as (page, refused):
        page.goto(base + "/#publishMessage")
        expect(page.locator("#block")).to_have_value("publishMessage")
        for name, value in [("tenantId", "t-1"), ("clientId", "c-1"), ("topic", "alerts")]:
            page.get_by_label(name, exact=True).fill(value)
        page.get_by_label("accessToken", exact=True).fill("tok-5e21aa90c4")
        page.get_by_label("Map", exact=True).fill('{"payload": "body.alert.text"}')
        page.get_by_label("Sender's signature", exact=True).select_option("github")
        page.get_by_role("button", name="Make hook").click()
        expect(page.locator("#hook-made")).to_be_visible()
        url, secret = (
            page.locator("#hook-url").inner_text(),
            page.locator("#hook-secret").inner_text(),
        )
        hook_id = url.rsplit("/", 1)[1]
        assert url == f"{base}/webhooks/{hook_id}" and len(secret) >= 22

        page.get_by_label("Sample payload", exact=True).fill('{"alert": {"text": "door open"}}')
        page.get_by_role("button", name="Map the sample").click()
        expect(page.locator("#hook-args")).to_be_visible()
        shown = json.loads(page.locator("#hook-args").inner_text())
        assert shown["payload"] == "door open" and shown["topic"] == "alerts"
        assert shown["accessToken"] == "[redacted]"
        assert "nothing was sent" in page.locator("#hook-status").inner_text()

        page.get_by_label("Sample payload", exact=True).fill('{"other": 1}')
        page.get_by_role("button", name="Map the sample").click()
        expect(page.locator("#hook-status")).to_contain_text("body.alert.text")

        hook = requests.get(f"{base}/hooks/{hook_id}", timeout=5).json()
        assert hook["map"] == {"payload": "body.alert.text"} and secret not in json.dumps(hook)
        assert refused == []
