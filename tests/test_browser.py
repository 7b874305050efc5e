"""End to end in a real Chromium (Debian's, driven by Playwright) against `streamlit run` on 127.0.0.1.

The journey of a new hospital: first start prints the admin password once; the admin signs in, must change it,
adds a clinician and sees the audit trail; a clinician added from the CLI signs in, keeps the session across a
refresh, cannot reach admin pages by address, and signs out.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NEW_ADMIN_PASSWORD = "Ward-7-night-shift"

if not Path(CHROMIUM).exists():
    pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium); .ci/run installs it",
                allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fresh MedUI on a free port, with its own MEDUI_HOME; yields (base url, terminal log path, env)."""
    home = tmp_path_factory.mktemp("browser_home")
    log = home / "terminal.log"
    port = free_port()
    env = {**os.environ, "MEDUI_HOME": str(home)}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("streamlit did not start:\n" + log.read_text()) from None
                time.sleep(0.5)
        yield base, log, env
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    call = getattr(request.node, "rep_call", None)  # set by the hook in conftest.py
    if call is None or call.failed:
        out = ROOT / "test-output" / request.node.name
        out.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(out / "failure.png"), full_page=True)
    context.close()


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


def test_deep_link_on_a_fresh_server_only_reaches_sign_in(server, page):
    base, _, _ = server
    page.goto(f"{base}/admin_users")
    page.get_by_label("Username").wait_for()
    assert page.get_by_role("heading", name="Users").count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0


def test_first_admin_signs_in_changes_password_adds_clinician_and_sees_audit(server, page):
    base, log, _ = server
    password = printed_admin_password(log)
    sign_in(page, base, "admin", password)
    page.get_by_text("You are using a one-time password").wait_for()
    page.get_by_label("Current password").fill(password)
    page.get_by_label("New password (at least 10 characters)").fill(NEW_ADMIN_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_ADMIN_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    page.get_by_text("Welcome, admin.").wait_for()
    assert log.read_text().count(password) == 1, "the admin password must be printed once only"

    for title in ("Users", "Models", "Training", "Audit", "Notes", "Records", "Imaging", "ECG", "Glucose", "Risk",
                  "My account", "Home"):
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
        page.wait_for_load_state("networkidle")
        expect_no_exception(page)

    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Users").click()
    page.get_by_label("Username (or the person's e-mail, for single sign-on)").fill("dr.wilson")
    page.get_by_label("Initial password (at least 10 characters)").fill("Oncology-desk-4")
    page.get_by_role("button", name="Add user").click()
    page.get_by_text("Added clinician 'dr.wilson'.").wait_for()

    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Audit").click()
    page.get_by_text("Chain intact").wait_for()
    table = page.locator('[data-testid="stDataFrame"]')
    table.wait_for()
    expect_no_exception(page)


def test_cli_added_clinician_signs_in_survives_refresh_and_cannot_reach_admin(server, page):
    base, _, env = server
    subprocess.run([sys.executable, "-m", "medui", "users", "add", "--username", "dr.cuddy",
                    "--password", "Dean-of-medicine-1", "--role", "clinician"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    sign_in(page, base, "dr.cuddy", "Dean-of-medicine-1")
    page.get_by_text("Welcome, dr.cuddy.").wait_for()
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_role("link", name="Users").count() == 0

    wait_for_session_cookie(page)
    page.reload()  # the signed cookie keeps the session
    page.get_by_text("Welcome, dr.cuddy.").wait_for()

    page.goto(f"{base}/admin_users")  # typed address: the page is not registered for a clinician
    page.wait_for_timeout(1500)
    assert page.get_by_role("heading", name="Users").count() == 0
    page.keyboard.press("Escape")

    page.goto(base)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Username").wait_for()
    page.reload()  # the cookie no longer opens a session
    page.get_by_label("Username").wait_for()
    assert page.get_by_text("Welcome, dr.cuddy.").count() == 0
