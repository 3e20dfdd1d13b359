"""The built website, checked in a real browser (headless Chromium driven by Playwright)
with the network off: every page loads with no console error and no failed request,
every image loads, every internal link and anchor resolves, formulas render, search
finds pages, solutions unfold, both sidebar toggles work on a laptop and on a phone,
dark mode is readable, and interactive figures respond to their controls.

Run after the book is built (``make test`` does: ``make test-site``). Needs Debian's
``chromium`` and the Python ``playwright`` package (never ``playwright install``).
Outside CI a missing browser skips these tests with a message; with ``CI=true`` it
fails them.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("SITE_DIR", ROOT / "_build" / "html"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]
INSTALL = ("install the browser with `apt-get install chromium` (Debian) and the driver with "
           "`.venv/bin/pip install playwright` (never `playwright install`)")
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


def _missing(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: {INSTALL}", pytrace=False)
    pytest.skip(f"{reason}: {INSTALL}")


def pages() -> list[str]:
    """Every HTML page of the site, as a path relative to its root."""
    if not SITE.exists():
        return []
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts)


PAGES = pages()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    if not PAGES:
        pytest.fail(f"no built site at {SITE}: run `make book` first", pytrace=False)
    handler = functools.partial(_Quiet, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright is not installed")
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        _missing(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Visit:
    """A page opened with the network cut off except for the local server, recording
    console errors, uncaught exceptions and failed or refused requests."""

    def __init__(self, browser, base: str, path: str, viewport=LAPTOP, color_scheme="light"):
        self.context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        host = urlparse(base).netloc
        self.context.route("**/*", lambda route: route.continue_() if urlparse(route.request.url).netloc == host
                           else (self.failed.append(f"offline: {route.request.url}"), route.abort()))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.failure}: {r.url}"))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"HTTP {r.status}: {r.url}"))
        self.page.goto(urljoin(base, path), wait_until="load")
        self.page.wait_for_timeout(300)

    def close(self):
        self.context.close()


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_cleanly_offline(browser, server, path):
    v = Visit(browser, server, path)
    try:
        broken = v.page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.getAttribute('src'))")
        math = v.page.locator(".math").count()
        if math:
            v.page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20000)
            raw = v.page.evaluate(
                "Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container'))"
                ".map(e => e.textContent.slice(0, 40))")
        else:
            raw = []
    finally:
        v.close()
    assert not v.errors, f"console errors on {path}: {v.errors}"
    assert not v.failed, f"failed requests on {path}: {v.failed}"
    assert not broken, f"images that did not load on {path}: {broken}"
    assert not raw, f"formulas left as raw TeX on {path}: {raw[:5]}"


def test_every_figure_has_real_alt_text():
    bad = []
    for rel in PAGES:
        html = (SITE / rel).read_text(encoding="utf-8")
        for alt in re.findall(r'<img[^>]*alt="([^"]*)"', html):
            if not alt.strip() or re.search(r"\.(png|svg|jpe?g|gif)$", alt):
                bad.append(f"{rel}: {alt!r}")
    assert not bad, f"{len(bad)} images whose alt text is empty or a file name, e.g. {bad[:5]}"


class _LinksAndIds(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _LinksAndIds:
    parser = _LinksAndIds()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_every_internal_link_and_anchor_resolves():
    if not PAGES:
        pytest.fail(f"no built site at {SITE}: run `make book` first", pytrace=False)
    bad, checked = [], 0
    for rel in PAGES:
        page = SITE / rel
        for href in _parse(page).links:
            url = urlparse(href)
            if url.scheme or url.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.exists():
                bad.append(f"{rel}: {href} (no file)")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in _parse(target).ids:
                bad.append(f"{rel}: {href} (no anchor)")
    assert checked > 100
    assert not bad, f"{len(bad)} broken internal links, e.g. {bad[:10]}"


def test_search_finds_pages(browser, server):
    v = Visit(browser, server, "search.html?q=optimizer")
    try:
        v.page.wait_for_selector("#search-results li, ul.search li", timeout=20000)
        hits = v.page.locator("ul.search li").count()
    finally:
        v.close()
    assert hits >= 3, f"search for 'optimizer' found {hits} pages"
    assert not v.errors and not v.failed, (v.errors, v.failed)


def _lesson_with_solutions() -> str:
    for rel in PAGES:
        if rel.startswith("chapters/") and "solution" in (SITE / rel).read_text(encoding="utf-8"):
            return rel
    pytest.fail("no lesson page with a solution")


def test_solutions_unfold(browser, server):
    v = Visit(browser, server, _lesson_with_solutions())
    try:
        solution = v.page.locator(".solution.dropdown").first
        body = solution.locator("section").first
        solution.scroll_into_view_if_needed()
        assert not body.is_visible(), "a solution is shown before the reader asks for it"
        solution.locator(".toggle-button, button.toggle-button, .admonition-title").first.click()
        body.wait_for(state="visible", timeout=5000)
    finally:
        v.close()


def test_sidebar_toggles_on_a_laptop(browser, server):
    v = Visit(browser, server, _lesson_with_solutions(), viewport=LAPTOP)
    try:
        sidebar = v.page.locator("#pst-primary-sidebar")
        assert sidebar.is_visible()
        toggles = v.page.locator(".primary-toggle:visible")
        assert toggles.count() == 1, f"{toggles.count()} visible primary toggles"
        width = sidebar.bounding_box()["width"]
        toggles.first.click()
        v.page.wait_for_timeout(600)
        box = sidebar.bounding_box()
        assert not sidebar.is_visible() or box is None or box["width"] < width / 2, "☰ did not hide the sidebar"
        toggles.first.click()
        v.page.wait_for_timeout(600)
        assert sidebar.is_visible(), "☰ did not bring the sidebar back"
    finally:
        v.close()
    assert not v.errors, v.errors


def test_sidebar_toggles_on_a_phone(browser, server):
    v = Visit(browser, server, _lesson_with_solutions(), viewport=PHONE)
    try:
        primary = v.page.locator(".primary-toggle:visible")
        assert primary.count() == 1, f"{primary.count()} visible ☰ buttons"
        primary.first.click()
        v.page.wait_for_selector("#pst-primary-sidebar-modal[open]", timeout=5000)
        v.page.keyboard.press("Escape")
        v.page.wait_for_timeout(300)
        secondary = v.page.locator(".secondary-toggle:visible")
        assert secondary.count() == 1, f"{secondary.count()} visible ≡ buttons"
        secondary.first.click()
        v.page.wait_for_selector("#pst-secondary-sidebar-modal[open]", timeout=5000)
        assert v.page.locator("#pst-secondary-sidebar-modal a").count() > 0, "the page contents are empty"
    finally:
        v.close()
    assert not v.errors, v.errors


def _luminance(rgb: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", rgb)[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_dark_mode_is_readable(browser, server):
    v = Visit(browser, server, _lesson_with_solutions(), color_scheme="dark")
    try:
        theme = v.page.evaluate("document.documentElement.dataset.theme")
        bg = v.page.evaluate("getComputedStyle(document.body).backgroundColor")
        fg = v.page.evaluate("getComputedStyle(document.querySelector('article p') || document.body).color")
    finally:
        v.close()
    assert theme == "dark"
    hi, lo = sorted((_luminance(bg), _luminance(fg)), reverse=True)
    assert (hi + 0.05) / (lo + 0.05) >= 4.5, f"text {fg} on {bg} is hard to read"
    assert _luminance(bg) < 0.2, f"the dark theme's background is light: {bg}"


def test_no_duplicate_ids_or_search_boxes(browser, server):
    v = Visit(browser, server, _lesson_with_solutions())
    try:
        dupes = v.page.evaluate(
            "(() => { const c = {}; document.querySelectorAll('[id]').forEach(e => c[e.id] = (c[e.id]||0)+1);"
            " return Object.keys(c).filter(k => c[k] > 1); })()")
        boxes = v.page.locator(".search-button-field:visible").count()
    finally:
        v.close()
    assert not dupes, f"duplicate ids: {dupes}"
    assert boxes <= 1, f"{boxes} visible search boxes"


WIDGET_PAGES = [rel for rel in PAGES
                if "application/vnd.jupyter.widget-state+json" in (SITE / rel).read_text(encoding="utf-8")]


def test_every_chapter_has_an_interactive_figure():
    chapters = sorted({rel.split("/")[1] for rel in PAGES if rel.startswith("chapters/") and rel.count("/") == 2})
    with_widgets = {rel.split("/")[1] for rel in WIDGET_PAGES if rel.startswith("chapters/")}
    assert chapters, "no chapter pages"
    missing = [c for c in chapters if c not in with_widgets]
    assert not missing, f"chapters without an interactive figure: {missing}"


@pytest.mark.parametrize("path", WIDGET_PAGES)
def test_interactive_figures_respond_without_a_kernel(browser, server, path):
    """Moving each slider changes what its figure shows, offline and with no kernel."""
    v = Visit(browser, server, path)
    shown = ("Array.from(document.querySelectorAll('.widget-image, .widget-html-content'))"
             ".filter(e => e.offsetParent !== null).map(e => e.src || e.textContent)")
    try:
        v.page.wait_for_selector(".widget-slider .noUi-handle", timeout=20000)
        handles = v.page.locator(".widget-slider .noUi-handle")
        assert handles.count() >= 1
        for i in range(handles.count()):
            before = v.page.evaluate(shown)
            handles.nth(i).scroll_into_view_if_needed()
            handles.nth(i).focus()
            v.page.keyboard.press("End")
            v.page.wait_for_timeout(500)
            after = v.page.evaluate(shown)
            assert after != before, f"slider {i} on {path} moved but the figure did not change"
    finally:
        v.close()
    assert not v.errors and not v.failed, (v.errors, v.failed)


def test_executed_notebooks_are_downloadable():
    """Each notebook page links to its executed notebook (with outputs), published by
    the site beside the output-free source."""
    missing = []
    lessons = [rel for rel in PAGES if rel.startswith("chapters/") and (ROOT / rel).with_suffix(".ipynb").exists()]
    assert lessons, "no lesson pages"
    import json
    for rel in lessons:
        html = (SITE / rel).read_text(encoding="utf-8")
        m = re.search(r'href="([^"]*_executed/[^"]+\.ipynb)"', html)
        if not m:
            missing.append(f"{rel}: no link")
            continue
        target = (SITE / rel).parent / m.group(1)
        if not target.exists():
            missing.append(f"{rel}: {m.group(1)} missing")
            continue
        nb = json.loads(target.read_text(encoding="utf-8"))
        if not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"):
            missing.append(f"{rel}: the executed notebook has no outputs")
    assert not missing, missing
