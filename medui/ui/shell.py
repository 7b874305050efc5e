"""The app's shared frame: one-time start-up and the sidebar every signed-in page shows."""

from __future__ import annotations

import streamlit as st

from medui import registry
from medui.auth import UserInfo
from medui.bootstrap import bootstrap, first_admin_banner
from medui.device import describe, pick_device
from medui.ui.session import sign_out


@st.cache_resource(show_spinner=False)
def start_once() -> None:
    """Migrate the database and, on the very first start, print the admin password to the terminal only."""
    password = bootstrap()
    if password:
        print(first_admin_banner(password), flush=True)


@st.cache_resource(show_spinner=False)
def compute_device() -> str:
    return pick_device()


def sidebar(user: UserInfo) -> None:
    with st.sidebar:
        st.markdown(f"**{user.username}** · {user.role}")
        try:
            st.caption(f"Compute: {describe(compute_device())}")
        except ValueError as exc:  # a bad MEDUI_DEVICE: say so instead of failing every page
            st.caption(f"Compute: not available ({exc})")
        active = registry.production_versions()
        if active:
            st.caption("Models in use: " + ", ".join(f"{name} v{version}" for name, version in sorted(active.items())))
        else:
            st.caption("Models in use: none promoted yet")
        if st.button("Sign out", key="medui_sign_out", width="stretch"):
            sign_out(user)
            st.rerun()
