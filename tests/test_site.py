"""The web site (make site) in a real browser, served from 127.0.0.1.

It builds the site from the committed notebooks (tools/site.py; nothing is executed), serves it with Python's
http.server on a free port, and drives Debian's Chromium with Playwright: every page loads without console
errors, every image and every internal link resolves, the search finds "BatchNorm", solutions stay collapsed,
and notebook 04's page is photographed at a phone's and a projector's width into ``test-output/``.
"""

import subprocess
import sys
import time
import urllib.request
from urllib.parse import urldefrag, urlparse

import pytest
from test_browser import CHROMIUM, OUTPUT, _playwright
from test_commands import ROOT, free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"),
    pytest.mark.skipif(_playwright() is None, reason="Playwright is not installed (pip install playwright)"),
]

SIZES = {"phone": (390, 844), "projector": (1920, 1080)}
#: Where the Colab and Binder badges come from: the site's only outside images (not reachable offline).
BADGE_HOSTS = ("colab.research.google.com", "mybinder.org")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site served on 127.0.0.1; yields its base URL and the build's seconds."""
    sys.path.insert(0, str(ROOT))
    from tools import site as site_tool

    out = tmp_path_factory.mktemp("site") / "html"
    seconds = site_tool.build(out, tmp_path_factory.mktemp("site-src"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base, timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield base, seconds
    finally:
        server.kill()
        server.wait(timeout=30)


def test_the_site_builds_in_under_two_minutes_without_executing(site):
    _, seconds = site
    assert seconds < 120


def test_every_page_loads_cleanly_with_its_images_and_links(site):
    base, _ = site
    errors, pages, links, images = [], {}, set(), set()
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # The one outside resource is each notebook's Colab and Binder badge, which this offline machine cannot fetch:
        # only errors about the site itself count.
        page.on(
            "console",
            lambda msg: (
                errors.append(f"{page.url}: {msg.text}")
                if msg.type == "error" and not any(host in msg.text or host in str(msg.location) for host in BADGE_HOSTS)
                else None
            ),
        )
        page.on("pageerror", lambda err: errors.append(f"{page.url}: {err}"))
        queue = [base + "index.html"]
        while queue:
            url = queue.pop()
            if url in pages:
                continue
            response = page.goto(url)
            pages[url] = response.status
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                target = urldefrag(href)[0]
                if urlparse(target).netloc == urlparse(base).netloc:
                    links.add(target)
                    if target.endswith(".html") and target not in pages:
                        queue.append(target)
            unloaded = "els => els.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
            broken = [src for src in page.eval_on_selector_all("img", unloaded) if urlparse(src).netloc not in BADGE_HOSTS]
            images.update(page.eval_on_selector_all("img", "els => els.map(i => i.src)"))
            assert not broken, f"{url}: images that did not load: {broken}"
        browser.close()
    assert all(status == 200 for status in pages.values()), pages
    notebooks = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert {f"{base}notebooks/{name}.html" for name in notebooks} <= set(pages), "a notebook page is not reachable"
    assert len(images) > 20, "the notebooks' figures should be on the pages"
    dead = []
    for link in sorted(links):
        try:
            urllib.request.urlopen(link, timeout=10).close()
        except OSError as err:
            dead.append(f"{link}: {err}")
    assert not dead, f"internal links that do not resolve: {dead}"
    assert not errors, f"console errors: {errors}"


def test_search_finds_batchnorm_and_solutions_stay_collapsed(site):
    base, _ = site
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(f"{base}search.html?q=BatchNorm")
        results = page.locator("#search-results li")
        results.first.wait_for(timeout=30_000)
        found = results.all_inner_texts()
        assert len(found) >= 3 and any("03" in text for text in found), found
        page.goto(f"{base}notebooks/04_training_mnist.html")
        solution = page.get_by_text("# Solution 1", exact=False).first
        assert not solution.is_visible(), "the solutions should be collapsed"
        browser.close()


@pytest.mark.parametrize("name", list(SIZES))
def test_notebook_04_reads_well_on_a_phone_and_a_projector(site, name):
    base, _ = site
    width, height = SIZES[name]
    OUTPUT.mkdir(exist_ok=True)
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(f"{base}notebooks/04_training_mnist.html")
        page.locator("h1 >> visible=true").first.wait_for()
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        page.screenshot(path=str(OUTPUT / f"site_04_{name}.png"))
        browser.close()
    assert overflow <= 1, f"the page scrolls sideways by {overflow} px at {width} px wide"


def test_the_site_tool_refuses_a_broken_build(tmp_path, monkeypatch):
    """The build runs Sphinx with warnings as errors: a page the table of contents names but that is missing fails."""
    sys.path.insert(0, str(ROOT))
    from tools import site as site_tool

    monkeypatch.setattr(site_tool, "landing_page", lambda readme: "# Site\n\n```{toctree}\nnotebooks/99_missing\n```\n")
    with pytest.raises(RuntimeError, match="99_missing"):
        site_tool.build(tmp_path / "html", tmp_path / "src")
