"""Who is signed in: one guard every page calls, backed by server-side sessions and a signed cookie."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from medui import audit, auth
from medui.auth import AuthError, UserInfo
from medui.auth.sessions import ABSOLUTE_LIFETIME

COOKIE_NAME = "medui_session"
TOKEN_KEY = "medui_token"


def sso_configured() -> bool:
    """True when `[auth]` is set in Streamlit secrets, so `st.login` can reach an OIDC provider."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises its own not-found error type
        return False


def _sso_user() -> UserInfo | None:
    if not sso_configured() or not st.user.is_logged_in:
        return None
    identity = str(st.user.get("email") or "")
    first_time = not st.session_state.get("medui_sso_audited")
    try:
        user = auth.user_for_sso(identity)
    except AuthError as exc:
        st.session_state["medui_sso_error"] = str(exc)
        user = None
    if first_time:  # once per browser session, not on every rerun
        audit.record(identity or "(blank)", "sign_in", "success" if user else "failure", method="sso")
        st.session_state["medui_sso_audited"] = True
    return user


def ensure_routed() -> None:
    """Send this run back through app.py's router if Streamlit ran a page file directly.

    Until some session calls st.navigation, Streamlit treats `pages/` as an implicit multipage app and serves
    any file in it by address, bypassing the router (and listing every page). Streamlit offers no setting for
    this, so the guard flips the same class flag st.navigation flips and reruns through app.py.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def current_user() -> UserInfo | None:
    """The signed-in user for this browser, or None; checks the server-side session on every run."""
    token = st.session_state.get(TOKEN_KEY) or st.context.cookies.get(COOKIE_NAME)
    user = auth.resume_session(token if isinstance(token, str) else None)
    if user is None:
        st.session_state.pop(TOKEN_KEY, None)
        return _sso_user()
    st.session_state[TOKEN_KEY] = token
    return user


def require_user(admin: bool = False, changing_password: bool = False) -> UserInfo:
    """Stop the page unless someone is signed in (and is an admin, when asked): pages are scripts, so each checks.

    `changing_password` lets a user with a one-time password reach the page where they replace it.
    """
    ensure_routed()
    user = current_user()
    if user is None:
        st.error("Please sign in to use MedUI.")
        st.stop()
    if user.must_change_password and not changing_password:
        st.warning("Please change your password before using MedUI.")
        st.stop()
    if admin and not user.is_admin:
        audit.record(user.username, "page_refused", "refused", page="admin")
        st.error("This page is for administrators.")
        st.stop()
    return user


def sign_in(username: str, password: str) -> UserInfo:
    """Authenticate, open a session and queue the cookie that keeps it across a browser refresh."""
    user = auth.authenticate(username, password)
    token = auth.start_session(user.username)
    st.session_state[TOKEN_KEY] = token
    return user


def sign_out(user: UserInfo) -> None:
    """End every session of this user, on every browser, and clear this browser's cookie."""
    auth.end_all_sessions(user.username)
    audit.record(user.username, "sign_out")
    st.session_state.clear()
    if sso_configured() and st.user.is_logged_in:
        st.logout()


def sync_cookie() -> None:
    """Make the browser's session cookie match this session: set after sign-in, cleared after sign-out.

    Streamlit reads cookies only when the page connects, so after a change the mismatch persists for this
    connection and the (idempotent, invisible) script is sent on each run; a lost run cannot leave it unset.
    The token is our own signed URL-safe string, never user input.
    """
    token = st.session_state.get(TOKEN_KEY) or ""
    if st.context.cookies.get(COOKIE_NAME, "") == token:
        return
    max_age = int(ABSOLUTE_LIFETIME.total_seconds()) if token else 0
    st.html(
        f"<script>document.cookie = '{COOKIE_NAME}={token}; path=/; max-age={max_age}; SameSite=Strict'"
        f" + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )
