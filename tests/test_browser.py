"""End to end in a real Chromium (Debian's, driven by Playwright) against `streamlit run` on 127.0.0.1.

The journey of a new hospital: first start prints the admin password once; the admin signs in, must change it,
adds a clinician and sees the audit trail; a clinician added from the CLI signs in, keeps the session across a
refresh, cannot reach admin pages by address, and signs out.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from browser_harness import (
    NEW_ADMIN_PASSWORD,
    ROOT,
    expect_no_exception,
    printed_admin_password,
    require_browser,
    sign_in,
    wait_for_session_cookie,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_browser()


def test_deep_link_on_a_fresh_server_only_reaches_sign_in(live_server, browser_page):
    base, _, _ = live_server
    browser_page.goto(f"{base}/admin_users")
    browser_page.get_by_label("Username").wait_for()
    assert browser_page.get_by_role("heading", name="Users").count() == 0
    assert browser_page.locator('[data-testid="stSidebarNav"]').count() == 0


def test_first_admin_signs_in_changes_password_adds_clinician_and_sees_audit(live_server, browser_page):
    base, log, _ = live_server
    password = printed_admin_password(log)
    sign_in(browser_page, base, "admin", password)
    browser_page.get_by_text("You are using a one-time password").wait_for()
    browser_page.get_by_label("Current password").fill(password)
    browser_page.get_by_label("New password (at least 10 characters)").fill(NEW_ADMIN_PASSWORD)
    browser_page.get_by_label("Repeat the new password").fill(NEW_ADMIN_PASSWORD)
    browser_page.get_by_role("button", name="Change password").click()
    browser_page.get_by_text("Welcome, admin.").wait_for()
    assert log.read_text().count(password) == 1, "the admin password must be printed once only"

    for title in ("Users", "Models", "Training", "Audit", "Notes", "Records", "Imaging", "ECG", "Glucose", "Risk",
                  "My account", "Home"):
        browser_page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
        browser_page.wait_for_load_state("networkidle")
        expect_no_exception(browser_page)

    browser_page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Users").click()
    browser_page.get_by_label("Username (or the person's e-mail, for single sign-on)").fill("dr.wilson")
    browser_page.get_by_label("Initial password (at least 10 characters)").fill("Oncology-desk-4")
    browser_page.get_by_role("button", name="Add user").click()
    browser_page.get_by_text("Added clinician 'dr.wilson'.").wait_for()

    browser_page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Audit").click()
    browser_page.get_by_text("Chain intact").wait_for()
    table = browser_page.locator('[data-testid="stDataFrame"]')
    table.wait_for()
    expect_no_exception(browser_page)


def test_cli_added_clinician_signs_in_survives_refresh_and_cannot_reach_admin(live_server, browser_page):
    base, _, env = live_server
    subprocess.run([sys.executable, "-m", "medui", "users", "add", "--username", "dr.cuddy",
                    "--password", "Dean-of-medicine-1", "--role", "clinician"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    sign_in(browser_page, base, "dr.cuddy", "Dean-of-medicine-1")
    browser_page.get_by_text("Welcome, dr.cuddy.").wait_for()
    nav = browser_page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_role("link", name="Users").count() == 0

    wait_for_session_cookie(browser_page)
    browser_page.reload()  # the signed cookie keeps the session
    browser_page.get_by_text("Welcome, dr.cuddy.").wait_for()

    browser_page.goto(f"{base}/admin_users")  # typed address: the page is not registered for a clinician
    browser_page.wait_for_timeout(1500)
    assert browser_page.get_by_role("heading", name="Users").count() == 0
    browser_page.keyboard.press("Escape")

    browser_page.goto(base)
    browser_page.get_by_role("button", name="Sign out").click()
    browser_page.get_by_label("Username").wait_for()
    browser_page.reload()  # the cookie no longer opens a session
    browser_page.get_by_label("Username").wait_for()
    assert browser_page.get_by_text("Welcome, dr.cuddy.").count() == 0
