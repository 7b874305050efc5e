"""ECG: upload or sample, the standard measurements, the rhythm model's opinion and where in the trace it looked."""

import hashlib

import streamlit as st

import medui.signals.ecg.samples  # noqa: F401  (registers the samples)
from medui import records
from medui.signals.ecg import analyse, read_ecg
from medui.signals.ecg.explain import BAND_TITLES, METHODS, band, caption, occlusion_band, wave_summary
from medui.signals.ecg.plots import beat_overlay, ecg_figure, tachogram
from medui.ui.ecg_holter import holter_view
from medui.ui.samples import sample_picker
from medui.ui.session import require_user
from medui.ui.text import markdown_safe
from medui.uploads import UploadRejected

user = require_user()
st.title("ECG")
st.caption("Measurements by NeuroKit2. The rhythm model was trained on synthetic recordings: research use only, "
           "not for clinical decisions.")

uploads = st.file_uploader("ECG recording: CSV, EDF/EDF+, DICOM waveform, or a WFDB .hea together with its .dat",
                           accept_multiple_files=True)
fs = st.number_input("Sampling rate (Hz), only for a CSV without a time column", value=None, step=1.0)
chosen = sample_picker("ecg")
if uploads:
    main = next((u for u in uploads if u.name.lower().endswith(".hea")), uploads[0])
    name, data = main.name, main.getvalue()
    extra = {u.name: u.getvalue() for u in uploads if u is not main}
elif chosen:
    name, data, extra = chosen[0].filename, chosen[1], {}
else:
    st.info("Upload a recording, or load a sample.")
    st.stop()

key = hashlib.sha256(data + repr((name, fs, sorted(extra))).encode()).hexdigest()
if st.session_state.get("ecg_key") != key:
    bar = st.progress(0.0, text="Analysing…")
    try:
        record = read_ecg(data, name, fs, extra)
        st.session_state["ecg"] = (record, analyse(record, progress=lambda done: bar.progress(
            done, text=f"Analysing the recording in chunks… {100 * done:.0f}%")))
    except (ValueError, UploadRejected) as exc:
        st.session_state.pop("ecg", None)
        st.error(markdown_safe(str(exc)))
        st.stop()
    finally:
        bar.empty()
    st.session_state["ecg_key"] = key
record, result = st.session_state["ecg"]
stored_result = result  # what "Save analysis" stores: the whole recording's result, also for a Holter
if "holter" in result:
    record, result = holter_view(record, result, key)

st.caption(markdown_safe(f"{result['source'].upper()}, {len(record.lead_names)} lead(s), {record.fs:g} Hz, "
                         f"{result['duration_s']:g} s; {result['units']}; analysed lead {result['analysed_lead']} "
                         f"({result['lead_choice']})"))
rr = result["rr_ms"]
cells = st.columns(3) + st.columns(3)  # six measurements, readable at any width
for cell, (label, value, unit) in zip(cells, [
        ("Heart rate", result["heart_rate_bpm"], "bpm"), ("RR mean", rr["mean"], "ms"), ("SDNN", rr["sdnn"], "ms"),
        ("RMSSD", rr["rmssd"], "ms"), ("pNN50", result["pnn50"], "%"),
        ("Detector agreement", result["detector_agreement"], "")]):
    cell.metric(label, "n/a" if value is None else f"{value:g} {unit}".strip())
for warning in result["warnings"]:
    st.warning(markdown_safe(warning))

attributions: dict = {}
if result["rhythm"]:
    st.subheader("Rhythm model")
    top = result["rhythm"][0]
    st.markdown(f"**{top['label']}** ({100 * top['probability']:.0f}%) — model {result['model']['name']} "
                f"v{result['model']['version']}, trained on synthetic recordings.")
    st.bar_chart({r["label"]: r["probability"] for r in result["rhythm"]}, horizontal=True, height=180)
    if top["label"] == "atrial fibrillation":
        st.page_link("pages/risk.py", label="Assess stroke risk in atrial fibrillation (CHA₂DS₂-VASc)",
                     query_params={"score": "cha2ds2vasc"}, icon=":material/arrow_forward:")
    if result["attributions"].get("per_sample"):
        method = st.radio("Attribution method", list(METHODS), horizontal=True, key="ecg_attr_method")
        attributions = result["attributions"]
        if METHODS[method] == "occlusion":
            cached = st.session_state.get("ecg_occlusion")
            if not cached or cached[0] != key:
                with st.spinner("Computing the occlusion map…"):
                    st.session_state["ecg_occlusion"] = (key, occlusion_band(record, result))
            attributions = st.session_state["ecg_occlusion"][1]
        st.caption(caption(attributions))
attribution = band(attributions)

st.subheader("Trace")
names = record.lead_names
analysed = names.index(result["analysed_lead"])
shown = st.multiselect("Leads", names, default=[names[analysed]])
paper = st.toggle("ECG paper grid (25 mm/s, 10 mm/mV)", value=True)
show_band = st.toggle("Show where the model looked", value=attribution is not None, disabled=attribution is None)
st.plotly_chart(ecg_figure(record, result, [names.index(n) for n in shown] or [analysed], paper,
                           attribution if show_band else None, BAND_TITLES.get(attributions.get("method"), "model")),
                key="ecg_trace")
left, right = st.columns(2)
left.plotly_chart(beat_overlay(result["cleaned"], result["r_peaks"], record.fs), key="ecg_beats")
right.plotly_chart(tachogram(result["r_peaks"], record.fs), key="ecg_rr")

if attribution is not None:
    st.subheader("Where the evidence sits")
    summary = wave_summary(attributions, result["beats"])
    st.markdown(summary["sentence"])
    st.caption("Shares of the total absolute attribution (for and against the predicted rhythm), summed over leads; "
               "P = P onset to QRS onset, QRS = QRS onset to offset, T = QRS offset to T end, from the delineation.")
    waves, leads = st.columns(2)
    waves.dataframe({"Wave": list(summary["waves"]), "Share (%)": [round(100 * v, 1) for v in summary["waves"].values()]},
                    hide_index=True)
    if len(summary["leads"]) > 1:
        leads.bar_chart({lead: 100 * share for lead, share in summary["leads"].items()}, horizontal=True,
                        height=300)
    if summary["beats"]:
        with st.expander("Per beat"):
            st.dataframe([{k: round(100 * v, 1) if isinstance(v, float) else v for k, v in row.items()}
                          for row in summary["beats"]], hide_index=True)

patient = st.text_input("Patient identifier", key="ecg_patient").strip()
if st.button("Save analysis", type="primary", disabled=not patient):
    stored = {k: v for k, v in stored_result.items() if k not in ("cleaned", "attributions")}
    model = stored_result["model"] or {}
    analysis_id = records.save_analysis("ecg", stored, created_by=user.username, patient=patient,
                                        input_sha256=records.input_hash(data), model_name=model.get("name"),
                                        model_version=model.get("version"))
    st.success(f"Saved as analysis {analysis_id} for {patient}.")
