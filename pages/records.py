"""Records: find stored notes results across notes and patients ("patients with metformin", "negated pneumonia"),
open one, review it; admins export the reviewed notes to retrain the model."""

import pandas as pd
import streamlit as st

from medui import audit, records
from medui.notes.corrections import ASSERTIONS, reviewed, training_jsonl
from medui.notes.extract import LABELS
from medui.ui.notes_view import export_buttons, review_editor, show_result
from medui.ui.session import require_user
from medui.ui.text import markdown_safe

user = require_user()
st.title("Records")
st.caption("Stored notes analyses of every patient in this MedUI, as reviewed by clinicians. Every search and every "
           "opened analysis is recorded in the audit trail.")

with st.form("records_search"):
    words = st.text_input("Find (a problem, drug, test or code, e.g. metformin, pneumonia, E11)", key="records_words")
    left, right = st.columns(2)
    labels = left.multiselect("Label", LABELS, key="records_labels")
    assertions = right.multiselect("Assertion", ASSERTIONS, key="records_assertions",
                                   help="absent = negated (\"denies\", \"no evidence of\")")
    patient = left.text_input("Patient identifier (exact)", key="records_patient").strip()
    since = right.date_input("Saved from", value=None, key="records_since")
    until = right.date_input("Saved until", value=None, key="records_until")
    submitted = st.form_submit_button("Search", type="primary")
if submitted:
    filters = {"words": words, "labels": tuple(labels), "assertions": tuple(assertions), "patient": patient,
               "since": since, "until": until}
    hits = records.search_notes(**filters)
    audit.record(user.username, "records_search", patient=patient or None, hits=len(hits),
                 filters=sorted(k for k, v in filters.items() if v))  # which filters, not what was typed
    st.session_state["records_hits"] = hits
hits = st.session_state.get("records_hits")

opened = st.query_params.get("analysis")
if hits is not None:
    if hits:
        patients = sorted({h.patient or "(none)" for h in hits})
        st.markdown(f"**{len(hits):,}** mentions in **{len({h.analysis_id for h in hits}):,}** notes of "
                    f"**{len(patients):,}** patients")
        st.caption(markdown_safe("Patients: " + ", ".join(patients[:50]) + (" …" if len(patients) > 50 else "")))
        st.dataframe(pd.DataFrame([{
            "Analysis": h.analysis_id, "Open": f"?analysis={h.analysis_id}", "Saved (UTC)": h.created_at, "Patient": h.patient or "", "By": h.created_by,
            "Source": h.source or "", "Text": h.text, "Label": h.label, "Assertion": h.assertion or "",
            "Code": h.code or "", "Code name": h.code_display or "", "Section": h.section or "", "Review": h.status}
            for h in hits]), hide_index=True,
            column_config={"Open": st.column_config.LinkColumn("Open", display_text="open in a new tab")})
        choice = st.selectbox("Open a stored analysis", sorted({h.analysis_id for h in hits}, reverse=True),
                              index=None, key="records_open")
        opened = choice or opened
    else:
        st.info("No stored note matches.")

if opened:
    record = records.get_analysis(int(opened)) if str(opened).isdigit() else None
    if record is None or record.kind != "notes":
        st.error(markdown_safe(f"There is no stored notes analysis {opened}."))
    else:
        if st.session_state.get("records_viewed") != record.id:  # once per opening, not on every rerun
            audit.record(user.username, "analysis_view", patient=record.patient, analysis_id=record.id)
            st.session_state["records_viewed"] = record.id
        st.subheader(f"Analysis {record.id}")
        st.caption(markdown_safe(f"{record.result.get('source') or 'note'} · patient {record.patient or '(none)'} · "
                                 f"saved {record.created_at} UTC by {record.created_by}"))
        entities = reviewed(record.id)
        result = {**record.result, "patient": record.patient}
        show_result(result, entities, key="records_view")
        export_buttons([{**result, "entities": [e for e in entities if e["status"] != "rejected"]}], record.patient,
                       user, key="records_export")
        review_editor(record.id, result.get("text", ""), entities, user)

if user.is_admin:
    st.divider()
    st.subheader("Corrections for retraining")
    st.caption("Every reviewed note (at least one correction saved) as fine-tuning JSONL for the `ner` task: entities as "
               "corrected, rejected ones left out, unreviewed ones as the model found them. Upload it on "
               "Admin → Training. The export is audited.")
    if st.button("Prepare the training file"):
        st.session_state["records_training"] = training_jsonl(user.username)
    if prepared := st.session_state.get("records_training"):
        data, count = prepared
        st.download_button(f"Download {count:,} reviewed notes (JSONL)", data, file_name="notes-corrections.jsonl",
                           mime="application/jsonl", disabled=not count)
