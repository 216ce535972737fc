"""A real browser: JupyterLab on localhost, headless Chromium, notebook 02's architecture explorer.

It starts JupyterLab (token-protected, no browser of its own) on a copy of ``02_conv_levels.ipynb``,
drives Debian's ``chromium`` with Playwright (no browser download: Playwright is pointed at the
system executable), runs the notebook, checks that the explorer's width slider is rendered and that
moving it changes the shape table on the page, and writes a screenshot to ``test-output/``.
It skips, saying why, only when Chromium or Playwright is not installed (``.ci/run`` installs both).
"""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import types

import pytest
from test_commands import ROOT, free_port, wait_for_lab

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = ROOT / "test-output"
#: The status bar's kernel item: "Python 3 (ipykernel) | Idle" once the kernel is connected and idle
KERNEL_STATUS = "#jp-main-statusbar [title^='Change kernel']"


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
    """JupyterLab serving a folder that holds a copy of notebook 02; yields its URL, token, folder and log."""
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
        wait_for_lab(url, token, server, tmp_path / "lab.log")
        yield types.SimpleNamespace(url=url, token=token, root=root, log=tmp_path / "lab.log")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def _answer_dialogs(page, seen):
    """Answer any JupyterLab dialog as a student would, and note its text for the failure message.

    A dialog can open at any moment (JupyterLab asks which kernel to use when a cell runs before the
    kernel is connected) and then covers the page, so every click would wait behind it.
    """

    def answer(dialog):
        seen.append(" / ".join(dialog.inner_text().split("\n")))
        dialog.locator(".jp-mod-accept").first.click()  # "Select" for the kernel dialog

    page.add_locator_handler(page.locator(".jp-Dialog"), answer)


def _appears(locator, seconds):
    """Whether the element shows up within that many seconds."""
    try:
        locator.wait_for(timeout=seconds * 1000)
    except PlaywrightTimeout:
        return False
    return True


def _what_went_wrong(page, lab, dialogs, name):
    """Everything a failure report needs: a screenshot, the dialogs, the errors in the notebook, the server's log.

    The notebook is saved from the page first, so the cells' errors (say, a missing MNIST) can be read
    back from the file. All of it goes to test-output/browser_02_<name>.txt; the start is returned.
    """
    page.screenshot(path=str(OUTPUT / f"browser_02_{name}.png"))
    kernel = page.locator(KERNEL_STATUS).all_inner_texts()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    time.sleep(3)
    errors = []
    for cell in json.loads((lab.root / "02_conv_levels.ipynb").read_text())["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                errors.append(f"cell [{cell.get('execution_count')}]: {out['ename']}: {out['evalue'][:400]}")
            elif out.get("name") == "stderr":
                errors.append(f"cell [{cell.get('execution_count')}] stderr: {''.join(out['text'])[-400:]}")
    report = (
        f"kernel: {kernel}\ndialogs: {dialogs}\nerrors in the notebook: {errors or 'none'}\n"
        f"see test-output/browser_02_{name}.png and .txt\n--- JupyterLab's log (end) ---\n{lab.log.read_text()[-4000:]}"
    )
    (OUTPUT / f"browser_02_{name}.txt").write_text(report)
    return report[:2500]


def _run_all_cells(page, tries=3):
    """Run > Run All Cells from the menu bar, as a student would, until the cells are queued.

    Queued cells show ``[*]:`` at once; if a click is lost (a menu that did not open) every prompt
    stays at ``[ ]:``, and the menu is used again.
    """
    started = page.locator(".jp-CodeCell .jp-InputPrompt").filter(has_text=re.compile(r"\[(\*|\d+)\]"))
    for _ in range(tries):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        if _appears(started.first, 30):
            return True
        page.keyboard.press("Escape")  # close a menu left open
    return False


def test_explorer_slider_changes_the_table_in_chromium(lab):
    OUTPUT.mkdir(exist_ok=True)
    dialogs = []
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        _answer_dialogs(page, dialogs)
        page.goto(f"{lab.url}/lab/tree/02_conv_levels.ipynb?token={lab.token}")
        page.locator(".jp-Notebook").wait_for()
        # The status bar says "Python 3 (ipykernel) | Idle" once the kernel has started and connected
        # (the notebook's own execution indicator already reads "idle" while it says "No Kernel").
        kernel = page.locator(KERNEL_STATUS)
        if not _appears(kernel.filter(has_text=re.compile(r"\| Idle$")), 120):
            pytest.fail("the kernel did not start:\n" + _what_went_wrong(page, lab, dialogs, "no_kernel"))
        if not _run_all_cells(page):
            pytest.fail("Run All Cells queued no cell in 3 tries:\n" + _what_went_wrong(page, lab, dialogs, "not_run"))
        # the explorer: a width slider (a SelectionSlider) above the per-level table
        slider = page.locator(".widget-slider").filter(has_text="width ×").first
        if not _appears(slider, 240):
            pytest.fail("no width slider after Run All:\n" + _what_went_wrong(page, lab, dialogs, "no_slider"))
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
            try:  # let the toast fade out of the screenshot
                page.get_by_text("official Jupyter news").wait_for(state="hidden", timeout=5_000)
            except PlaywrightTimeout:
                pass
        page.screenshot(path=str(OUTPUT / "browser_02_explorer.png"), full_page=False)
        browser.close()
    # The summary line counts the parameters: halving every width changes it, and the table below it
    assert after.splitlines()[0] != before.splitlines()[0], f"moving the width slider did not change the table:\n{after[:300]}"
    assert "1/2" in slider_text
    # A dialog is only expected if JupyterLab had to ask for a kernel; anything else is a real problem
    assert all("Select Kernel" in text for text in dialogs), f"JupyterLab showed dialogs: {dialogs}"
