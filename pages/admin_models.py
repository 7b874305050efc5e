"""Admin → Models: the registry, file verification, and promotion or rollback with confirmation."""

import pandas as pd
import streamlit as st

from medui import registry
from medui.registry import RegistryError
from medui.ui.models import forget_loaded_models
from medui.ui.session import require_user

admin = require_user(admin=True)
st.title("Models")

if notice := st.session_state.pop("models_notice", None):
    st.success(notice)

versions = registry.list_versions()
if not versions:
    st.info("No models are registered yet. Shipped models live in `models/`; trained and imported ones appear here "
            "too (`python -m medui models import PATH --task T`).")
    st.stop()

st.dataframe(pd.DataFrame([{
    "Model": v.name, "Version": v.version, "Stage": v.stage, "Task": v.task, "Method": v.method,
    "Base": v.base_model, "Labels": len(v.labels), "Created (UTC)": v.created_at,
    "Source": "shipped" if v.shipped else "trained/imported"} for v in versions]), hide_index=True)

name = st.selectbox("Model", sorted({v.name for v in versions}))
own_versions = [v for v in versions if v.name == name]
version = st.selectbox("Version", [v.version for v in own_versions], index=len(own_versions) - 1)
chosen = next(v for v in own_versions if v.version == version)

with st.expander("Manifest"):
    st.json(chosen.to_dict())


def change(action, verb: str) -> None:
    try:
        result = action()
    except RegistryError as exc:
        st.error(str(exc))
    else:
        forget_loaded_models()
        st.session_state["models_notice"] = f"{verb}: {result.name} v{result.version} is now in production."
        st.rerun()


verify_col, promote_col, rollback_col = st.columns(3)
with verify_col:
    if st.button("Verify files"):
        try:
            registry.verify_files(chosen)
        except RegistryError as exc:
            st.error(str(exc))
        else:
            st.success(f"All {len(chosen.files)} files match their sha256.")
with promote_col:
    sure = st.checkbox(f"Yes, every clinician will use {name} v{version}", key="confirm_promote",
                       disabled=chosen.stage == "production")
    if st.button("Promote to production", type="primary", disabled=not sure or chosen.stage == "production"):
        change(lambda: registry.promote(name, version, actor=admin.username), "Promoted")
with rollback_col:
    sure_back = st.checkbox(f"Yes, roll {name} back to the previous production version", key="confirm_rollback")
    if st.button("Roll back", disabled=not sure_back):
        change(lambda: registry.rollback(name, actor=admin.username), "Rolled back")
