"""Sign in with a local account, or through single sign-on when it is configured."""

import streamlit as st

from medui.auth import AuthError
from medui.ui.session import ensure_routed, sign_in, sso_configured

ensure_routed()

st.title("MedUI")
st.caption("Clinical AI workbench. Sign in to continue.")

with st.form("sign_in"):
    username = st.text_input("Username", autocomplete="username")
    password = st.text_input("Password", type="password", autocomplete="current-password")
    submitted = st.form_submit_button("Sign in", type="primary")

if submitted:
    if not username or not password:
        st.error("Enter your username and password.")
    else:
        try:
            sign_in(username, password)
        except AuthError as exc:
            st.error(str(exc))
        else:
            st.rerun()

if sso_configured():
    st.divider()
    if error := st.session_state.pop("medui_sso_error", None):
        st.error(error)
    st.button("Sign in with single sign-on", on_click=st.login)
