"""Admin → Audit: the filterable audit trail and whether its hash chain is intact."""

import pandas as pd
import streamlit as st

from medui import audit
from medui.ui.session import require_user

require_user(admin=True)
st.title("Audit trail")

report = audit.verify()
if report.ok:
    st.success(f"Chain intact: {report.checked} rows verified; no row has been edited or deleted.")
else:
    st.error("The audit chain is broken: " + "; ".join(report.problems))

actor_col, action_col, outcome_col, limit_col = st.columns(4)
actor = actor_col.text_input("User")
action = action_col.text_input("Action (e.g. sign_in, model_promote)")
outcome = outcome_col.selectbox("Outcome", ["any", *audit.OUTCOMES])
limit = limit_col.number_input("Rows", min_value=10, max_value=5000, value=200, step=50)

rows = audit.events(actor=actor.strip().lower() or None, action=action.strip() or None,
                    outcome=None if outcome == "any" else outcome, limit=int(limit))
if rows:
    table = pd.DataFrame(rows)
    table["detail"] = table["detail"].map(lambda d: ", ".join(f"{k}={v}" for k, v in (d or {}).items()))
    st.dataframe(table, hide_index=True)
else:
    st.info("No events match these filters.")
