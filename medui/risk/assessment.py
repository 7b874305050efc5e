"""One risk form for every calculator: each input asked once, every applicable score computed side by side."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from medui import samples
from medui.risk.base import CALCULATORS, Field, RiskInputError

# Calculators name some inputs differently; the form asks once, under the key on the right.
ALIASES = {"bp_medication": "bp_treated", "stroke": "stroke_tia", "prevalent_hypertension": "hypertension",
           "prevalent_stroke": "stroke_tia"}

# Inputs only the learned model uses; all optional (missing values are imputed and said so).
MODEL_ONLY_FIELDS = (
    Field("cigs_per_day", "Cigarettes per day", low=0, high=70, unit="/day"),
    Field("diastolic_bp", "Diastolic blood pressure", low=40, high=140, unit="mmHg"),
    Field("heart_rate", "Resting heart rate", low=30, high=160, unit="bpm"),
    Field("glucose", "Fasting glucose", low=40, high=400, unit="mg/dL"),
)

# What a gauge shows for each score: output key, scale maximum, unit.
HEADLINES = {
    "pce": ("risk_10y_percent", 100, "%"),
    "prevent": ("cvd_10y_percent", 100, "%"),
    "cha2ds2vasc": ("points", 9, "points"),
    "cha2ds2va": ("points", 8, "points"),
    "hasbled": ("points", 9, "points"),
    "findrisc": ("points", 26, "points"),
}
CATEGORY_KEYS = ("category", "risk_band", "annual_stroke_risk")


def form_key(field_name: str) -> str:
    return ALIASES.get(field_name, field_name)


def form_fields() -> list[Field]:
    """Every input once, with the widest validated range any score accepts (each score still checks its own)."""
    merged: dict[str, Field] = {}
    for calculator in CALCULATORS.values():
        for field in calculator.fields:
            key = form_key(field.name)
            known = merged.get(key)
            if known is None:
                merged[key] = replace(field, name=key)
            elif field.kind == "number":
                lows = [x for x in (known.low, field.low) if x is not None]
                highs = [x for x in (known.high, field.high) if x is not None]
                merged[key] = replace(known, low=min(lows, default=None), high=max(highs, default=None))
    for field in MODEL_ONLY_FIELDS:
        merged.setdefault(field.name, field)
    return list(merged.values())


def inputs_for(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The inputs one calculator needs, taken from the form's values."""
    return {f.name: values.get(form_key(f.name)) for f in CALCULATORS[name].fields}


def model_inputs(values: dict[str, Any]) -> dict[str, Any]:
    """The learned model's inputs from the form (its own names for a few shared ones)."""
    mapped = dict(values)
    for model_name, key in (("prevalent_hypertension", "hypertension"), ("prevalent_stroke", "stroke_tia")):
        if key in values:
            mapped[model_name] = values[key]
    return mapped


def assess(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every calculator's result, or the reason it does not apply to these inputs (e.g. age outside its range)."""
    results: dict[str, dict[str, Any]] = {}
    for name, calculator in CALCULATORS.items():
        try:
            results[name] = calculator.run(inputs_for(name, values))
        except RiskInputError as exc:
            results[name] = {"score": name, "refused": str(exc), "citation": calculator.citation}
    return results


def headline(name: str, result: dict[str, Any]) -> tuple[float | None, float, str, str | None]:
    """(value, scale maximum, unit, category) to draw one score's gauge."""
    key, maximum, unit = HEADLINES.get(name, ("points", 10, "points"))
    category = next((str(result[k]) for k in CATEGORY_KEYS if result.get(k) is not None), None)
    return result.get(key), maximum, unit, category


def summary_markdown(patient: str | None, results: dict[str, dict[str, Any]],
                     model: dict[str, Any] | None) -> str:
    """A print-friendly plain summary of one assessment."""
    lines = [f"# Risk assessment{f' — patient {patient}' if patient else ''}", ""]
    for name, result in results.items():
        title = CALCULATORS[name].title
        if "refused" in result:
            lines.append(f"- **{title}**: not applicable — {result['refused']}")
            continue
        value, _, unit, category = headline(name, result)
        lines.append(f"- **{title}**: {value} {unit}{f' ({category})' if category else ''}")
    if model and "probability" in model:
        lines += ["", f"**Learned model** ({model.get('model')} v{model.get('version')}, trained on the Framingham "
                  f"teaching cohort; not for clinical use): {100 * model['probability']:.1f}% 10-year CHD risk."]
    lines += ["", "Sources:"] + [f"- {CALCULATORS[n].citation}" for n in results]
    return "\n".join(lines)


SAMPLE_PATIENT = {
    "age": 62, "sex": "male", "race": "white", "total_cholesterol": 231, "hdl": 42, "systolic_bp": 148,
    "bp_treated": True, "statin": False, "diabetes": True, "smoker": True, "egfr": 74, "bmi": 29.5,
    "chf": False, "hypertension": True, "stroke_tia": False, "vascular_disease": False, "abnormal_renal": False,
    "abnormal_liver": False, "bleeding": False, "labile_inr": False, "drugs": False, "alcohol": False,
    "waist_cm": 104, "physical_activity": False, "daily_vegetables": False, "high_glucose_history": True,
    "family_history": "first_degree", "cigs_per_day": 15, "diastolic_bp": 88, "heart_rate": 76, "glucose": 118,
}

samples.register(samples.Sample(
    page="risk", key="smoker-with-diabetes", title="62-year-old smoker with diabetes and treated hypertension",
    description="A made-up patient with every risk-form field filled in", filename="sample_patient.json",
    origin="synthetic, written by MedUI", load=lambda: json.dumps(SAMPLE_PATIENT).encode()))
