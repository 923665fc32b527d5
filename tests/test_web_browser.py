"""The page in a real browser: `groundsearch serve` as a subprocess, Debian's headless Chromium driven by Playwright.

This is the one test that sees what a user sees: the server really listening, the stylesheet and cite.js
loaded under the page's Content-Security-Policy, the form submitted by a key press, the "Cite" box opened and
copied, and the layout at phone width. Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from retriever import Retriever

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("GROUNDSEARCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUERY = "hotel in Prince Edward Island"
TITLE = "Hotel Charlottetown"
START_TIMEOUT_S = 180  # opening the index loads the model: seconds alone, longer on a busy 2-core machine


def _missing() -> str | None:
    """What the browser stack lacks, or None."""
    missing = []
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium, or `make chromium`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright for Python (pip install -e '.[dev]')")
    return "browser test needs " + " and ".join(missing) if missing else None


IN_CI = os.environ.get("CI", "").lower() == "true"
if _missing() and not IN_CI:
    # At import, so a developer without a browser does not wait for the index to be built first.
    pytest.skip(str(_missing()), allow_module_level=True)


def _require_browser() -> None:
    """In CI a missing browser is a failure, never a skip: the one real-browser check must run there."""
    reason = _missing()
    if reason:
        pytest.fail(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"groundsearch serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"groundsearch serve did not answer /healthz in {START_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(small_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real CLI serving the real index on a free loopback port; stopped (by its own pid) at the end."""
    _require_browser()
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-m", "groundsearch", "serve", str(small_index), "--host", "127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _watch_errors(page: Page) -> list[str]:
    """Console errors and uncaught exceptions: a CSP refusing our own script or style shows up here."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _save(page: Page, tmp_path: Path, name: str, full_page: bool = True) -> list[Path]:
    """Into the test's own folder, and into a stable folder ($GROUNDSEARCH_SCREENSHOT_DIR) to quote it from."""
    stable = Path(os.environ.get("GROUNDSEARCH_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "groundsearch-shots")
    stable.mkdir(parents=True, exist_ok=True)
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=full_page)
    shutil.copyfile(shot, stable / name)
    assert shot.stat().st_size > 10_000  # a real rendering, not a blank image
    print(f"screenshot: {shot} and {stable / name}")
    return [shot, stable / name]


def test_search_read_cite_in_a_real_browser(browser: Browser, server: str, small_index: Path, tmp_path: Path) -> None:
    expected = Retriever.open(small_index).search(QUERY, k=10)  # the page's default k
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = context.new_page()
    errors = _watch_errors(page)

    page.goto(server + "/")
    assert page.locator("body").get_attribute("class") == "state-empty"
    page.fill("#q", QUERY)
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert "q=hotel+in+Prince+Edward+Island" in page.url
    assert page.input_value("#q") == QUERY  # the query stays in the box

    results = page.locator("li.result")
    assert results.count() == len(expected)
    assert results.nth(0).locator("h2.title").inner_text().strip() == TITLE == expected[0].title
    for i, hit in enumerate(expected):
        # textContent, not innerText: the DOM's text, byte for byte, whatever CSS does to whitespace.
        assert results.nth(i).locator("blockquote.passage").text_content() == hit.text

    first = results.nth(0)
    citation = first.locator("code.citation")
    assert not citation.is_visible()
    first.locator("details.cite summary").click()
    assert citation.is_visible() and citation.text_content() == expected[0].citation()
    copy = first.locator("button.copy")
    assert copy.is_visible()  # cite.js ran: the page's CSP lets its own script in
    copy.click()
    page.wait_for_function("b => b.textContent !== 'Copy'", arg=copy.element_handle())
    assert copy.inner_text() == "Copied"
    assert page.evaluate("navigator.clipboard.readText()") == expected[0].citation()
    assert errors == []

    _save(page, tmp_path, "search-desktop.png")
    context.close()


def test_phone_width_has_no_horizontal_overflow(browser: Browser, server: str, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    errors = _watch_errors(page)
    for name, path in (("phone-empty.png", "/"), ("phone-results.png", "/?q=" + QUERY.replace(" ", "+"))):
        page.goto(server + path)
        if path != "/":
            page.locator("li.result details.cite summary").first.click()  # the widest thing on the page
            assert page.locator("li.result").count() == 10
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[1] == 390 and width[0] <= width[1], f"{name}: page is {width[0]} px wide in a 390 px viewport"
        _save(page, tmp_path, name, full_page=False)  # one phone screen: what a user sees first
    assert errors == []
    context.close()


def test_api_docs_render_offline(browser: Browser, server: str, tmp_path: Path) -> None:
    """/docs draws the API from /openapi.json with Swagger UI files the server itself serves: no CDN."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/api/search']", timeout=30_000)
    assert page.locator(".opblock-summary-path[data-path='/api/passages/{passage_id}']").count() == 1
    assert requested and all(url.startswith(server + "/") for url in requested), requested
    _save(page, tmp_path, "api-docs.png", full_page=False)
    context.close()
