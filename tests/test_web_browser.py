"""The page in a real browser: `groundsearch serve` as a subprocess, Debian's headless Chromium driven by Playwright.

These are the tests that see what a user sees: the server really listening, the stylesheet and page.js loaded
under the page's Content-Security-Policy, the keyboard (`/` to the box, Enter to search, Enter on a toggle), the
"Cite" box opened and copied, more results, a passage in context, a query nothing matches, and the layout at
1280 px, in dark mode and at phone width. Playwright's own browser download is never used. One server and one
browser for the module, and few tests, each walking a whole path: the suite's time budget is tight.
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

from retriever import Hit, Retriever

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
GIBBERISH = "xyzzyqwv"
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


def _grouped(hits: list[Hit]) -> list[Hit]:
    """Hits in the order the page lists them: by article, in the order of each article's best hit."""
    articles = [h.document_id for h in hits]
    return sorted(hits, key=lambda h: articles.index(h.document_id))


def _left(page: Page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return float(box["x"])


def test_search_read_cite_page_through_in_a_real_browser(
    browser: Browser, server: str, small_index: Path, tmp_path: Path
) -> None:
    """Keyboard to results, words before numbers, grouping, citations copied, more results, a passage in place."""
    retriever = Retriever.open(small_index)
    result = retriever.search_with_status(QUERY, k=20)  # two pages of the page's default k
    expected = result.hits
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = context.new_page()
    errors = _watch_errors(page)

    page.goto(server + "/")
    assert page.locator("body").get_attribute("class") == "state-empty"
    assert page.locator("h1").count() == 1
    footer = page.locator("footer").bounding_box()
    assert footer is not None and footer["y"] + footer["height"] == 900  # at the window's foot, not under the box
    page.locator(".tagline").click()  # away from the box, which the empty page focuses
    page.keyboard.press("/")  # page.js: "/" brings the focus back to the box
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(QUERY)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "q=hotel+in+Prince+Edward+Island" in page.url
    assert page.input_value("#q") == QUERY  # the query stays in the box
    page.locator("main").click(position={"x": 5, "y": 5})
    page.keyboard.press("/")  # again, from the results: the box focused, its query selected to be typed over
    focused = "[document.activeElement.id, document.activeElement.selectionStart, document.activeElement.selectionEnd]"
    assert page.evaluate(focused) == ["q", 0, len(QUERY)]

    # The summary line, the no-match line and the results start where the search box starts.
    lefts = {
        name: _left(page, sel)
        for name, sel in [("box", "form.search"), ("summary", "h1.summary"), ("results", "ol.results")]
    }
    assert len(set(lefts.values())) == 1, lefts
    assert page.locator("h1").count() == 1 and page.locator(".no-match").count() == 0
    # innerText has no quotes around the query: the <q> element's are drawn by CSS.
    assert page.locator("h1.summary").inner_text().startswith(f"Passages 1–10 for {QUERY}, best first")

    first_page = expected[:10]
    results = page.locator("li.result")
    assert results.count() == 10
    assert [int(str(i).split("-")[1]) for i in results.evaluate_all("els => els.map(e => e.id)")] == [
        h.passage_id for h in _grouped(first_page)
    ]
    best = page.locator(f"#passage-{first_page[0].passage_id}")
    assert best.locator("h2.title").inner_text().strip() == TITLE == first_page[0].title
    assert best.locator(".match").inner_text() == "strong match"
    assert best.locator(".match").get_attribute("title") == f"confidence {first_page[0].confidence:.2f}"
    assert best.locator(".as-of").inner_text() == f"as of {first_page[0].timestamp[:10]}"  # type: ignore[index]
    for hit in first_page:
        # textContent, not innerText: the DOM's text, byte for byte, whatever CSS does to whitespace.
        assert page.locator(f"#passage-{hit.passage_id} > blockquote.passage").text_content() == hit.text

    # Numbers on demand: the scores are folded away; Enter on the focused toggle opens them.
    scores = best.locator("details.scores")
    assert not scores.locator("dl").is_visible()
    scores.locator("summary").focus()
    page.keyboard.press("Enter")
    assert scores.locator("dl").is_visible() and f"{first_page[0].score:.3f}" in scores.inner_text()

    # An article's further hits are folded under its best one, and open on a click.
    grouped = page.locator("li.more-from")
    if grouped.count():
        inner = grouped.first.locator("li.result").first
        assert not inner.is_visible()
        grouped.first.locator("summary").first.click()
        assert inner.is_visible()

    citations = best.locator("pre.citation")
    assert not citations.first.is_visible()
    best.locator("details.cite summary").click()
    assert citations.all_text_contents() == [first_page[0].citation(s) for s in ("plain", "bibtex", "mediawiki")]
    copy = best.locator("button.copy").nth(1)  # BibTeX's
    assert copy.is_visible()  # page.js ran: the page's CSP lets its own script in
    copy.click()
    page.wait_for_function("b => b.textContent !== 'Copy'", arg=copy.element_handle())
    assert copy.inner_text() == "Copied"
    assert page.evaluate("navigator.clipboard.readText()") == first_page[0].citation("bibtex")
    _save(page, tmp_path, "search-desktop.png")

    # More results: ranks 11 to 20, the ones a search for 20 ranks there.
    with page.expect_navigation():
        page.locator("a[rel=next]").click()
    assert "page=2" in page.url and page.locator("h1.summary").inner_text().startswith("Passages 11–20 for")
    shown = page.locator("li.result").evaluate_all("els => els.map(e => Number(e.id.split('-')[1]))")
    assert shown == [h.passage_id for h in _grouped(expected[10:20])]
    assert page.locator("a[rel=prev]").count() == 1

    # A passage in context: its neighbours in its section around it, then on to the next passage.
    middle = next(h for h in expected if len(retriever.context(h.passage_id).passages) > 1)
    around = retriever.context(middle.passage_id)
    page.goto(server + f"/passages/{middle.passage_id}")
    assert page.locator("h1").inner_text().strip() == middle.title
    assert page.locator(".context blockquote").all_text_contents() == [h.text for h in around.passages]
    assert page.locator("blockquote.focus").text_content() == middle.text
    assert page.locator("a.revision-link").get_attribute("href") == middle.permalink
    _save(page, tmp_path, "passage-desktop.png")
    if around.next is not None:
        with page.expect_navigation():
            page.locator("a[rel=next]").click()
        assert page.url.endswith(f"/passages/{around.next}")
        assert page.locator("blockquote.focus").text_content() == retriever.get(around.next).text
    assert errors == []
    context.close()


def test_no_match_dark_mode_and_phone_width(browser: Browser, server: str, tmp_path: Path) -> None:
    """A gibberish query says nothing matches and mutes every hit; dark mode's focused box has an edge; at 390 px
    the box is nearly the screen's width and nothing is wider than the screen, results and passage page alike."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    page = context.new_page()
    errors = _watch_errors(page)
    page.goto(server + "/?q=" + GIBBERISH)
    assert page.locator("p.no-match").inner_text().startswith("No passage in this corpus matches well")
    assert page.locator("li.result").count() == page.locator("li.result.weak").count() == 10
    assert set(page.locator("li.result > .meta .match").all_text_contents()) == {"weak match"}
    page.focus("#q")
    edge = page.evaluate("getComputedStyle(document.querySelector('form.search')).borderTopColor")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert edge == "rgb(129, 201, 149)" != background  # the accent, on the dark background
    _save(page, tmp_path, "no-match-dark.png", full_page=False)
    context.close()

    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    phone_errors = _watch_errors(page)
    passage = None
    for name, path in (
        ("phone-empty.png", "/"),
        ("phone-results.png", "/?q=" + QUERY.replace(" ", "+")),
        ("phone-passage.png", None),
    ):
        page.goto(server + (path or f"/passages/{passage}"))
        box = page.locator("#q").bounding_box()
        assert box is not None and box["width"] >= 300, f"{name}: the search box is {box} in a 390 px viewport"
        if path and path != "/":
            page.locator("li.result details.cite summary").first.click()  # the widest thing on the page
            assert page.locator("li.result").count() == 10
            passage = page.locator("li.result").first.get_attribute("id").split("-")[1]  # type: ignore[union-attr]
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[1] == 390 and width[0] <= width[1], f"{name}: page is {width[0]} px wide in a 390 px viewport"
        _save(page, tmp_path, name, full_page=False)  # one phone screen: what a user sees first
    assert errors == phone_errors == []
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
    # The way back to the search page, in the API's description (Swagger UI opens it in a new tab).
    back = page.get_by_role("link", name="← Back to the search page")
    assert back.is_visible() and back.get_attribute("href") == "/"
    _save(page, tmp_path, "api-docs.png", full_page=False)
    context.close()
