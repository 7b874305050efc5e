"""Home: what this user can do, their recent analyses, and which model versions are in use."""

import pandas as pd
import streamlit as st

from medui import registry
from medui.records import recent_analyses
from medui.ui.session import require_user

user = require_user()
st.title("MedUI")
st.write(f"Welcome, **{user.username}**.")

st.subheader("What you can do here")
abilities = [
    "Extract problems (with assertion: present, absent, possible, hypothetical, family), medications with dose, "
    "route and frequency, tests and procedures from clinical notes, coded to ICD-10-CM and DrugBank; save, export "
    "(JSON, CSV, FHIR) and correct them (*Notes*), and search stored results across patients (*Records*).",
    "Analyse an ECG (CSV, EDF, WFDB or DICOM waveform): heart rate, R-peaks, HRV, signal quality, and a rhythm "
    "model's opinion with where in the trace it looked (*ECG*).",
    "View DICOM images and series as a diagnostic viewer shows them, get finding probabilities with maps of where "
    "the model looked and whether those maps can be trusted, and export images de-identified (*Imaging*).",
    "Upload a Dexcom, FreeStyle Libre or plain CSV glucose export and get the consensus CGM metrics and an AGP "
    "report (*Glucose*).",
    "Estimate cardiovascular, stroke, bleeding and diabetes risk with the published calculators, next to a "
    "learned model that explains its estimate (*Risk*).",
    "Change your password under *My account*.",
]
if user.is_admin:
    abilities += [
        "Add clinicians and admins, disable accounts, reset passwords and change roles (*Admin → Users*).",
        "Review registered models, promote a version to production or roll back (*Admin → Models*).",
        "Fine-tune models on your own labelled data, watch the jobs live and promote the result (*Admin → Training*).",
        "Read the audit trail and check that it has not been altered (*Admin → Audit*).",
    ]
st.markdown("\n".join(f"- {line}" for line in abilities))

st.subheader("Your recent analyses")
analyses = recent_analyses(user.username)
if analyses:
    st.dataframe(pd.DataFrame([{"When (UTC)": a.created_at, "Kind": a.kind, "Patient": a.patient or "",
                                "Model": a.model or ""} for a in analyses]), hide_index=True)
else:
    st.info("No analyses saved yet.")

st.subheader("Models in use")
active = registry.production_versions()
if active:
    st.dataframe(pd.DataFrame([{"Model": n, "Production version": v} for n, v in sorted(active.items())]),
                 hide_index=True)
else:
    st.info("No model has been promoted to production yet.")
