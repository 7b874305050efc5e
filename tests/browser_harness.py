"""Helpers for the real-browser tests (Playwright + Debian's Chromium against `streamlit run` on 127.0.0.1).

The fixtures live in conftest.py: `live_server` (a fresh MedUI per test module), `chromium`, `browser_page` (a new
context per test, screenshot on failure). A browser test module calls `require_browser()` at module level.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NEW_ADMIN_PASSWORD = "Ward-7-night-shift"


@contextmanager
def streamlit_process(env: dict[str, str], log: Path, start_timeout: float = 60
                      ) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run app.py` on a free loopback port with `env`, output to `log`; yields (base url, process) once
    healthy and stops it on exit. No file watcher: an edit to the checkout during a run must not reload modules
    (that drops every model cache), as in a hospital's deployment."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("streamlit did not start:\n" + log.read_text()) from None
                time.sleep(0.5)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def require_browser() -> None:
    """Skip the calling test module, saying why, when Chromium or Playwright is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium); .ci/run installs it",
                    allow_module_level=True)
    pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(base)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def expect_no_exception(page) -> None:
    page.wait_for_timeout(300)
    assert page.locator('[data-testid="stException"]').count() == 0


def wait_for_session_cookie(page) -> None:
    """The page's script sets the cookie just after sign-in; a refresh in that instant would still sign out."""
    deadline = time.monotonic() + 10
    while not any(c["name"] == "medui_session" and c["value"] for c in page.context.cookies()):
        assert time.monotonic() < deadline, "the session cookie was never set"
        page.wait_for_timeout(100)


def printed_admin_password(log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"created user 'admin' with password\s+(\S+)", log.read_text())
        if match:
            return match.group(1)
        time.sleep(0.5)
    raise AssertionError("the first-start admin password was not printed:\n" + log.read_text())


def open_page(page, title: str) -> None:
    """Follow the sidebar link `title` and wait for the page's heading, as a clinician moves between pages."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()


def upload(page, label_start: str, *files: Path) -> None:
    """Choose `files` in the st.file_uploader whose label starts with `label_start` (as a file dialog would)."""
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label_start)
    uploader.locator('input[type="file"]').set_input_files([str(f) for f in files])


def set_number(page, label: str, value: float) -> None:
    """Type into a number input and commit it (Streamlit commits on Enter or blur)."""
    box = page.get_by_label(label, exact=True)
    box.fill(f"{value:g}")
    box.press("Enter")


class Steps:
    """Numbered screenshots of a journey, one per step (`steps("upload")` → <folder>/02-upload.png), each after
    checking the page shows no exception and no error box; the `steps` fixture of a module decides what to keep."""

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.count = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"))
        expect_no_exception(self.page)
        errors = self.page.locator('[data-testid="stAlertContentError"]')
        assert errors.count() == 0, f"error shown at step {name}: {errors.all_inner_texts()}"


def choose(page, label: str, option: str, tries: int = 3) -> None:
    """Pick `option` in the selectbox `label`; a rerun that redraws the box closes its list, so open it again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(tries):
        page.get_by_role("combobox", name=label).click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
