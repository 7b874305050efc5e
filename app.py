"""MedUI router: the sign-in gate, the pages this user may see (and no others), and the shared sidebar."""

import streamlit as st

from medui.ui.session import current_user, sync_cookie
from medui.ui.shell import sidebar, start_once

st.set_page_config(page_title="MedUI", page_icon=":material/stethoscope:", layout="wide")
start_once()
user = current_user()

if user is None:
    # Only the sign-in page is registered: any other address, typed or from history, does not exist here.
    navigation = st.navigation([st.Page("pages/sign_in.py", title="Sign in", icon=":material/login:")],
                               position="hidden")
elif user.must_change_password:
    navigation = st.navigation([st.Page("pages/account.py", title="Change password", icon=":material/key:")],
                               position="hidden")
else:
    home = st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)
    pages = {
        "Workbench": [
            home,
            st.Page("pages/notes.py", title="Notes", icon=":material/clinical_notes:"),
            st.Page("pages/records.py", title="Records", icon=":material/manage_search:"),
            st.Page("pages/imaging.py", title="Imaging", icon=":material/radiology:"),
            st.Page("pages/ecg.py", title="ECG", icon=":material/ecg_heart:"),
            st.Page("pages/glucose.py", title="Glucose", icon=":material/glucose:"),
            st.Page("pages/risk.py", title="Risk", icon=":material/monitor_heart:"),
            st.Page("pages/account.py", title="My account", icon=":material/person:"),
        ],
    }
    if user.is_admin:
        pages["Admin"] = [
            st.Page("pages/admin_users.py", title="Users", icon=":material/group:"),
            st.Page("pages/admin_models.py", title="Models", icon=":material/deployed_code:"),
            st.Page("pages/admin_training.py", title="Training", icon=":material/model_training:"),
            st.Page("pages/admin_audit.py", title="Audit", icon=":material/policy:"),
        ]
    navigation = st.navigation(pages)
    if st.session_state.pop("medui_go_home", False):  # just replaced a one-time password
        st.switch_page(home)
    sidebar(user)

sync_cookie()
navigation.run()
