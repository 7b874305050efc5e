"""Glucose: a CGM export (Dexcom, LibreView or id,time,gl) to consensus metrics, targets, the AGP and a saved record."""

import streamlit as st

from medui import records
from medui.signals.cgm import analyse, metric_table, read_cgm
from medui.signals.cgm.agp import agp_figure, daily_figure, episodes, ranges_figure, report_html
from medui.signals.cgm.agp_static import agp_pdf, agp_png
from medui.ui.samples import sample_picker
from medui.ui.session import require_user
from medui.ui.text import markdown_safe
from medui.uploads import UploadRejected

user = require_user()
st.title("Glucose")
st.caption("Continuous glucose monitoring: the international consensus metrics (computed as the iglu package "
           "defines them), the ambulatory glucose profile and episodes. Metrics are in mg/dL.")

upload = st.file_uploader("CGM export (CSV: Dexcom Clarity, LibreView, or columns id,time,gl)", type=["csv", "txt"])
units_choice = st.radio("Units", ["Detect", "mg/dL", "mmol/L"], horizontal=True, key="glucose_units")
chosen = sample_picker("glucose")
if upload is not None:
    data, name = upload.getvalue(), upload.name
elif chosen:
    data, name = chosen[1], chosen[0].filename
else:
    st.info("Upload an export or load a sample to begin.")
    st.stop()

try:
    cgm = read_cgm(data, name, {"Detect": None, "mg/dL": "mgdl", "mmol/L": "mmol"}[units_choice])
except (UploadRejected, ValueError) as exc:
    st.error(markdown_safe(str(exc)))  # messages quote the file: escaped, never rendered as markup
    st.stop()
result = analyse(cgm)
for note in cgm.notes:
    st.caption(markdown_safe(note))

subjects = {s["id"]: s for s in result["subjects"]}
subject_id = st.selectbox("Subject", list(subjects), key="glucose_subject")
subject = subjects[subject_id]
rows = cgm.frame[cgm.frame["id"] == subject_id]
st.caption(f"{result['source']} export in {result['units']}: {subject['readings']} readings over {subject['days']} days.")
if not subject["sufficient"]:
    st.warning(f"Not enough data for a reliable report: the consensus asks for at least 14 days with at least 70% "
               f"of possible readings (here {subject['days']} days, "
               f"{subject['metrics']['active_percent']:.0f}% active).")

table = metric_table(subject["metrics"], cgm.units)
left, right = st.columns([3, 1])
left.dataframe(table, hide_index=True)
right.plotly_chart(ranges_figure(subject["metrics"]), key="glucose_ranges")
figures = [agp_figure(rows, cgm.units), daily_figure(rows, cgm.units)]
for n, fig in enumerate(figures):
    st.plotly_chart(fig, key=f"glucose_fig_{n}")

st.subheader("Hypo- and hyperglycaemia episodes (≥ 15 min)")
found = episodes(rows)
if found.empty:
    st.caption("No episodes.")
else:
    st.dataframe(found, hide_index=True)

html_col, pdf_col, png_col = st.columns(3)
html_col.download_button("Download AGP report (HTML; print to PDF from the browser)",
                         report_html(subject_id, table, [ranges_figure(subject["metrics"]), *figures], cgm.notes),
                         file_name="agp-report.html", mime="text/html")
# Drawn only when clicked (deferred data): matplotlib takes about a second per page.
pdf_col.download_button("AGP report (PDF)", lambda: agp_pdf(cgm, subject_id), file_name="agp-report.pdf",
                        mime="application/pdf", key="glucose_agp_pdf")
png_col.download_button("AGP report (PNG)", lambda: agp_png(cgm, subject_id), file_name="agp-report.png",
                        mime="image/png", key="glucose_agp_png")
patient = st.text_input("Patient identifier (needed to save)", key="glucose_patient").strip()
if st.button("Save analysis", type="primary", disabled=not patient,
             help=None if patient else "Enter a patient identifier first"):
    saved = {"source": result["source"], "units": result["units"], "subject": subject, "notes": cgm.notes}
    analysis_id = records.save_analysis("cgm", saved, created_by=user.username, patient=patient,
                                        input_sha256=records.input_hash(data))
    st.success(f"Saved as analysis {analysis_id} for {patient}.")
