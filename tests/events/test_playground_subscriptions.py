"""The playground's subscriptions panel in a real Chromium: the subscriptions the API made are
listed (never a secret), a chosen one's deliveries show newest first with their state, a
redelivered one shows its new attempt after the watcher's next round, and a removed one goes.
The watcher's rounds run in this process, as in test_deliveries.py; targets are loopback."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from app import create_app
from tests.events.conftest import FAST, publish, subscribe, verified
from tests.support.browser import browser_page, expect, serve
from tests.support.loopback import Loopback, closed_url
from tests.support.servers import ROOT
from tests.support.upstream import APP

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

#: Where the panel's screenshots are kept (CI keeps the folder).
ARTIFACTS = (
    Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / "playground-subscriptions"
)
#: A failed delivery waits this long before its next try: the page has time to show it
#: waiting, and only a redeliver makes it due again within the test.
LONG_WAIT = 3600.0


@pytest.fixture
def sandbox_settings(settings, request):
    """tests/events' sandbox settings, with retries an hour apart (and what a test adds)."""
    extra = getattr(request, "param", {})
    schedule = {"events_retry_schedule": (LONG_WAIT, LONG_WAIT)}
    return replace(settings, sandbox=True, **{**FAST, **schedule, **extra})


def watcher_round(app):
    app.extensions["events"].watcher(owner="test").round()


def shoot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def row_of(page, table, text):
    """The one row of ``table`` (subs or deliveries) that holds ``text``."""
    rows = page.locator(f"#{table}-list tr").filter(has_text=text)
    expect(rows).to_have_count(1)
    return rows


def cells(row) -> list[str]:
    return row.locator("td").all_inner_texts()


#: A time as the panel shows it (UTC, to the second).
SHOWN_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")


def test_subscriptions_and_their_deliveries_are_listed_redelivered_and_removed(
    sandbox_app, sandbox_client, pump
):
    down = closed_url()  # nothing listens there yet: the connection is refused
    with Loopback() as catcher:
        catcher.post("/hook", status=204)
        good = subscribe(sandbox_client, pump, catcher.url + "/hook")
        bad = subscribe(sandbox_client, pump, down + "/flow", topic="telemetry")
        message = publish(sandbox_client, pump, 1)
        watcher_round(sandbox_app)
        assert len(verified(catcher, good["secret"])) == 1

        with serve(sandbox_app) as base, browser_page(base) as (page, refused):
            page.goto(base + "/")
            expect(page.locator("#subs-status")).to_have_text("2 subscriptions.")
            good_row, bad_row = row_of(page, "subs", good["id"]), row_of(page, "subs", bad["id"])
            tenant, client = pump
            shown = cells(good_row)
            assert shown[:4] == [
                good["id"],
                "message.received",
                f"tenant {tenant}, client {client}",
                catcher.url + "/hook",
            ]
            assert SHOWN_TIME.match(shown[4]) and shown[5] == "active"
            shown = cells(bad_row)
            assert shown[2] == f"tenant {tenant}, client {client}, topic telemetry"
            assert shown[3] == down + "/flow"
            assert shown[5].startswith("active, failing since ")
            text = page.locator("#subs-section").inner_text()
            for secret in (good["secret"], bad["secret"], APP["clientSecret"], "whsec_"):
                assert secret not in text

            # The healthy one's log: its one delivery, delivered with the catcher's 204.
            good_row.get_by_role("button", name="Deliveries").click()
            expect(page.locator("#deliveries-of")).to_have_text(good["id"])
            delivered = cells(row_of(page, "deliveries", message))
            assert delivered[:4] == [message, "delivered", "1", "204"]
            assert SHOWN_TIME.match(delivered[4]) and delivered[5] == "—"
            assert good_row.get_attribute("aria-current") == "true"

            # The refused one's: tried once, no answer, its next try an hour away.
            bad_row.get_by_role("button", name="Deliveries").click()
            expect(page.locator("#deliveries-of")).to_have_text(bad["id"])
            waiting = row_of(page, "deliveries", message)
            shown = cells(waiting)
            assert shown[:4] == [message, "retrying", "1", "no answer (ConnectionError)"]
            assert SHOWN_TIME.match(shown[5])
            shoot(page, "1-refused-delivery")

            # The flow comes back at the same address; a redeliver makes its delivery due now,
            # and the watcher's next round sends it.
            with Loopback(port=urlsplit(down).port) as healed:
                healed.post("/flow", status=200)
                waiting.get_by_role("button", name="Redeliver").click()
                expect(page.locator("#subs-status")).to_contain_text("is due again")
                expect(waiting.locator("td").nth(1)).to_have_text("pending")
                assert cells(waiting)[2] == "0"
                watcher_round(sandbox_app)
                page.get_by_role("button", name="Refresh", exact=True).click()
                expect(waiting.locator("td").nth(1)).to_have_text("delivered")
                assert cells(waiting)[2:4] == ["1", "200"]
                assert [b["data"]["id"] for b in verified(healed, bad["secret"])] == [message]
            shoot(page, "2-redelivered")

            # Remove takes a second click; then the row and the subscription are gone.
            remove = good_row.get_by_role("button", name="Remove")
            remove.click()
            expect(page.locator("#subs-status")).to_contain_text("click again")
            assert len(requests.get(base + "/subscriptions", timeout=5).json()) == 2
            remove.click()
            expect(page.locator("#subs-status")).to_have_text(f"Subscription {good['id']} removed.")
            expect(page.locator("#subs-list tr")).to_have_count(1)
            # The log on show was the other one's: it stays open.
            expect(page.locator("#deliveries-of")).to_have_text(bad["id"])
            listed = requests.get(base + "/subscriptions", timeout=5).json()
            assert [sub["id"] for sub in listed] == [bad["id"]]
            shoot(page, "3-removed")
            assert page.problems == [] and refused == []


MARKUP_URL = 'http://127.0.0.1:9/<b>bold</b>?next="><img src=x>'
MARKUP_TOPIC = "<script>document.title='owned'</script><i>t</i>"


@pytest.mark.parametrize("sandbox_settings", [{"events_disable_after": 0.0}], indirect=True)
def test_markup_shows_as_text_a_disabled_one_says_why_and_errors_show(
    sandbox_app, sandbox_client, pump
):
    """A target URL and a topic holding markup are text on the page; a subscription whose
    deliveries failed past EVENTS_DISABLE_AFTER (here at once) says it is disabled and why;
    a subscription removed behind the page's back is an error in the panel's status line."""
    tenant, client = pump
    marked = subscribe(sandbox_client, ("<b>t</b>", client), MARKUP_URL, topic=MARKUP_TOPIC)
    failing = subscribe(sandbox_client, pump, closed_url() + "/gone")
    message = publish(sandbox_client, pump, 1)
    watcher_round(sandbox_app)

    with serve(sandbox_app) as base, browser_page(base) as (page, refused):
        page.goto(base + "/")
        expect(page.locator("#subs-list tr")).to_have_count(2)
        shown = cells(row_of(page, "subs", marked["id"]))
        assert shown[2] == f"tenant <b>t</b>, client {client}, topic {MARKUP_TOPIC}"
        assert shown[3] == MARKUP_URL
        section = page.locator("#subs-section")
        for tag in ("b", "i", "img", "script"):
            assert section.locator(tag).count() == 0, tag
        assert page.title() == "InstaMsg connector playground"

        failing_row = row_of(page, "subs", failing["id"])
        state = cells(failing_row)[5]
        assert re.fullmatch(
            r"disabled since \S+ \S+ UTC: its deliveries failed for EVENTS_DISABLE_AFTER "
            r"without a success",
            state,
        ), state
        assert failing_row.get_attribute("class") == "disabled"
        failing_row.get_by_role("button", name="Deliveries").click()
        failed = row_of(page, "deliveries", message)
        assert cells(failed)[:4] == [message, "failed", "1", "no answer (ConnectionError)"]
        shoot(page, "4-markup-and-disabled")

        # Removed elsewhere (another tab, a flow turned off): the page says what the API said.
        assert sandbox_client.delete(f"/subscriptions/{failing['id']}").status_code == 204
        failed.get_by_role("button", name="Redeliver").click()
        expect(page.locator("#subs-status")).to_have_text(
            re.compile(r"^Not redelivered: HTTP 404 INVALID_REQUEST: There is no subscription ")
        )
        page.get_by_role("button", name="Refresh", exact=True).click()
        expect(page.locator("#subs-status")).to_have_text("1 subscription.")
        expect(page.locator("#deliveries-section")).to_be_hidden()
        shoot(page, "5-removed-elsewhere")
        assert all("404" in problem for problem in page.problems), page.problems
        assert refused == []


def test_with_api_keys_the_panel_lists_once_a_key_is_given(tmp_path, sandbox_settings):
    """The panel sends the page's key: nothing is asked of /subscriptions before there is one,
    and the list comes once it is given."""
    key = "pk-5b0e71c2"
    app = create_app(replace(sandbox_settings, api_keys=(key,)))
    body = {
        "event": "message.received",
        "filter": {"tenantId": "t-1", "clientId": "c-1"},
        "target_url": "http://127.0.0.1:9/flow",
        **APP,
    }
    made = app.test_client().post("/subscriptions", json=body, headers={"X-API-Key": key})
    assert made.status_code == 201
    with serve(app) as base, browser_page(base) as (page, refused):
        asked = []
        page.on("request", lambda sent: asked.append(urlsplit(sent.url).path))
        page.goto(base + "/")
        field = page.get_by_label("API key", exact=True)
        field.wait_for()
        assert "/subscriptions" not in asked
        field.fill(key)
        field.press("Enter")
        expect(page.locator("#subs-status")).to_have_text("1 subscription.")
        assert cells(row_of(page, "subs", made.json["id"]))[3] == body["target_url"]
        assert page.problems == [] and refused == []
