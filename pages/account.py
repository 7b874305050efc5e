"""Change your own password (forced at first sign-in and after an admin reset)."""

import streamlit as st

from medui.auth import AuthError, change_password
from medui.ui.session import require_user

user = require_user(changing_password=True)

st.title("My account")
st.write(f"Signed in as **{user.username}** ({user.role}).")
if user.must_change_password:
    st.warning("You are using a one-time password. Choose your own password to continue.")

with st.form("change_password", clear_on_submit=True):
    current = st.text_input("Current password", type="password", autocomplete="current-password")
    new = st.text_input("New password (at least 10 characters)", type="password", autocomplete="new-password")
    repeat = st.text_input("Repeat the new password", type="password", autocomplete="new-password")
    submitted = st.form_submit_button("Change password", type="primary")

if submitted:
    if new != repeat:
        st.error("The two new passwords differ.")
    else:
        try:
            change_password(user.username, current, new)
        except AuthError as exc:
            st.error(str(exc))
        else:
            st.success("Password changed.")
            if user.must_change_password:
                st.session_state["medui_go_home"] = True
                st.rerun()
