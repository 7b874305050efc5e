"""Helpers for the real-browser tests (Playwright + Debian's Chromium against `streamlit run` on 127.0.0.1).

The fixtures live in conftest.py: `live_server` (a fresh MedUI per test module), `chromium`, `browser_page` (a new
context per test, screenshot on failure). A browser test module calls `require_browser()` at module level.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NEW_ADMIN_PASSWORD = "Ward-7-night-shift"


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
