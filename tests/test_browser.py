"""A real browser: JupyterLab on localhost, headless Chromium, notebook 02's architecture explorer.

It starts JupyterLab (token-protected, no browser of its own) on a copy of ``02_conv_levels.ipynb``,
drives Debian's ``chromium`` with Playwright (no browser download: Playwright is pointed at the
system executable), runs the notebook, checks that the explorer's width slider is rendered and that
moving it changes the shape table on the page, and writes a screenshot to ``test-output/``.
It skips, saying why, only when Chromium or Playwright is not installed (``.ci/run`` installs both).
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from test_commands import ROOT, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = ROOT / "test-output"


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright


try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:
    PlaywrightTimeout = TimeoutError


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"),
    pytest.mark.skipif(_playwright() is None, reason="Playwright is not installed (pip install playwright)"),
]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a folder that holds a copy of notebook 02; yields its base URL and token."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / "02_conv_levels.ipynb", root)
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "VGG_FAST": "1",
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                request = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
                urllib.request.urlopen(request, timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
                time.sleep(1)
        yield url, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def test_explorer_slider_changes_the_table_in_chromium(lab):
    url, token = lab
    OUTPUT.mkdir(exist_ok=True)
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/lab/tree/02_conv_levels.ipynb?token={token}")
        page.locator(".jp-Notebook").wait_for()
        # JupyterLab sometimes asks which kernel to start (a student would press "Select"); then wait for it
        dialog, idle = page.locator(".jp-Dialog"), page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
        deadline = time.monotonic() + 120
        while not idle.count() and time.monotonic() < deadline:
            if dialog.count() and dialog.get_by_role("button", name="Select").count():
                dialog.get_by_role("button", name="Select").click()
            time.sleep(0.5)
        idle.wait_for(timeout=10_000)
        slider = page.locator(".widget-slider").filter(has_text="width ×").first
        for attempt in range(2):
            # Run > Run All Cells, from the menu bar as a student would
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            try:  # the explorer: a width slider (a SelectionSlider) above the per-level table
                slider.wait_for(timeout=90_000 if attempt == 0 else 240_000)
                break
            except PlaywrightTimeout:
                if dialog.count() and dialog.get_by_role("button", name="Select").count():
                    dialog.get_by_role("button", name="Select").click()
                page.screenshot(path=str(OUTPUT / f"browser_02_attempt{attempt + 1}.png"))
                if attempt == 1:
                    raise
        slider.scroll_into_view_if_needed()
        table = page.locator(".widget-html-content").filter(has_text="parameters").first
        table.wait_for()
        before = table.inner_text()
        assert "fc1 has" in before and "28×28" in before

        handle = slider.locator(".noUi-handle, .ui-slider-handle").first
        handle.focus()
        handle.press("ArrowLeft")  # width 1 → 1/2
        deadline = time.monotonic() + 60
        while table.inner_text() == before and time.monotonic() < deadline:
            time.sleep(0.5)
        after, slider_text = table.inner_text(), slider.inner_text()
        news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's "notify about news?" toast
        if news.count():
            news.first.click()
        page.screenshot(path=str(OUTPUT / "browser_02_explorer.png"), full_page=False)
        browser.close()
    # The summary line counts the parameters: halving every width changes it, and the table below it
    assert after.splitlines()[0] != before.splitlines()[0], f"moving the width slider did not change the table:\n{after[:300]}"
    assert "1/2" in slider_text
