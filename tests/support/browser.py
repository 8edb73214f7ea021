"""Real-browser tests: Debian's Chromium, driven by Playwright for Python, on loopback only.

No browser is downloaded (``playwright install`` is never run): Playwright drives the
system's ``/usr/bin/chromium`` (``apt-get install chromium``). When either is missing the
test fails and says what to install, since CI installs both; a skip would hide a page that
was never tried.

Three guards keep every request on this machine: the app listens on 127.0.0.1 only;
Chromium resolves no host name but 127.0.0.1 (``--host-resolver-rules``) and runs without
its background services; and a route on the browser context refuses, and records, any
request to another host, which a test can assert is empty.
"""

from __future__ import annotations

import os
import shutil
import threading
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PLAYWRIGHT_PIN = "playwright==1.65.2"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
LOOPBACK = "127.0.0.1"


def playwright_api():
    """Playwright's sync API, or a failed test that says how to install what is missing."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail(
            f"Playwright for Python is not installed: pip install {PLAYWRIGHT_PIN} "
            "(requirements-dev.txt). Do not run `playwright install`: the tests use "
            f"Debian's Chromium at {CHROMIUM}.",
            pytrace=False,
        )
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium "
            "(or set CHROMIUM to its path).",
            pytrace=False,
        )
    return sync_api


class QuietHandler(WSGIRequestHandler):
    """The connector writes its own access log; werkzeug's would repeat it."""

    def log_request(self, *args, **kwargs):
        pass


def expect(target):
    """Playwright's web-first assertions. They poll through Playwright's own injected script:
    ``page.wait_for_function`` would evaluate a string, which the page's CSP forbids."""
    return playwright_api().expect(target)


@contextmanager
def serve(app):
    """Serve a Flask app on a free port of 127.0.0.1 in a thread; yield its base URL."""
    server = make_server(LOOPBACK, 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def browser_page(base_url: str, downloads=None):
    """A fresh page in headless Chromium that may reach ``base_url`` only.

    Yields ``(page, refused)``: ``refused`` lists every URL the page tried outside its origin,
    and ``page.problems`` the console errors and uncaught exceptions of the page.
    """
    sync_api = playwright_api()
    origin = urlsplit(base_url)
    refused: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=ARGS, downloads_path=downloads
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})

            def only_here(route):
                url = urlsplit(route.request.url)
                if (url.scheme, url.netloc) == (origin.scheme, origin.netloc):
                    route.continue_()
                else:
                    refused.append(route.request.url)
                    route.abort()

            context.route("**/*", only_here)
            page = context.new_page()
            page.problems = []
            page.on(
                "console",
                lambda message: (
                    page.problems.append(message.text) if message.type == "error" else None
                ),
            )
            page.on("pageerror", lambda error: page.problems.append(str(error)))
            yield page, refused
            context.close()
        finally:
            browser.close()


def copy_screenshot(source, target="/tmp/playground.png"):
    """Leave a copy where the integrator looks for it."""
    shutil.copyfile(source, target)
