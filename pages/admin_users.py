"""Admin → Users: add accounts, disable or re-enable them, reset passwords, change roles."""

import dataclasses

import pandas as pd
import streamlit as st

from medui import auth
from medui.auth import AuthError
from medui.ui.session import require_user

admin = require_user(admin=True)
st.title("Users")

users = auth.list_users()
st.dataframe(pd.DataFrame([dataclasses.asdict(u) for u in users]), hide_index=True)


def run_action(action, success: str) -> None:
    """Run an account change, showing its refusal as a message rather than an error page."""
    try:
        result = action()
    except AuthError as exc:
        st.error(str(exc))
    else:
        st.session_state["users_notice"] = success.format(result=result)
        st.rerun()


if notice := st.session_state.pop("users_notice", None):
    st.success(notice)

st.subheader("Add a user")
with st.form("add_user", clear_on_submit=True):
    username = st.text_input("Username (or the person's e-mail, for single sign-on)")
    role = st.selectbox("Role", auth.ROLES)
    password = st.text_input("Initial password (at least 10 characters)", type="password")
    must_change = st.checkbox("Ask for a new password at first sign-in", value=True)
    if st.form_submit_button("Add user", type="primary"):
        run_action(lambda: auth.create_user(username, password, role, actor=admin.username,
                                            must_change_password=must_change), f"Added {role} {username.strip().lower()!r}.")

st.subheader("Change an account")
target = st.selectbox("Account", [u.username for u in users])
chosen = next(u for u in users if u.username == target)
left, middle, right = st.columns(3)
with left:
    confirmed = st.checkbox(f"Yes, {'disable' if chosen.active else 'enable'} {target}", key="confirm_active")
    if st.button("Disable" if chosen.active else "Enable", disabled=not confirmed):
        run_action(lambda: auth.set_active(target, not chosen.active, actor=admin.username),
                   f"{'Disabled' if chosen.active else 'Enabled'} {target!r}.")
with middle:
    confirmed_reset = st.checkbox(f"Yes, reset {target}'s password", key="confirm_reset")
    if st.button("Reset password", disabled=not confirmed_reset):
        run_action(lambda: auth.reset_password(target, actor=admin.username),
                   f"One-time password for {target!r}: `{{result}}` — give it to them privately; "
                   "it must be changed at the next sign-in and is not shown again.")
with right:
    new_role = st.selectbox("Role", auth.ROLES, index=auth.ROLES.index(chosen.role), key="new_role")
    if st.button("Change role", disabled=new_role == chosen.role):
        run_action(lambda: auth.set_role(target, new_role, actor=admin.username), f"{target!r} is now {new_role}.")
