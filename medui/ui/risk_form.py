"""The Risk page's input widgets: one widget per form field, pre-fillable from a sample or stored values."""

from __future__ import annotations

from typing import Any

import streamlit as st

from medui.risk.base import Field

PREFIX = "risk_in_"
SECTIONS = {
    "Patient": ("age", "sex", "race", "bmi", "waist_cm"),
    "Measurements": ("systolic_bp", "diastolic_bp", "total_cholesterol", "hdl", "egfr", "glucose", "heart_rate"),
    "Lifestyle and family": ("smoker", "cigs_per_day", "physical_activity", "daily_vegetables", "alcohol",
                             "family_history"),
}


def prefill(values: dict[str, Any], fields: list[Field]) -> None:
    """Put known values into the widgets (before they are drawn), ignoring keys the form does not have."""
    known = {f.name for f in fields}
    for key, value in values.items():
        if key in known:
            st.session_state[PREFIX + key] = value


def _widget(field: Field) -> Any:
    key = PREFIX + field.name
    label = f"{field.label} ({field.unit})" if field.unit else field.label
    if field.kind == "bool":
        return st.checkbox(label, key=key, help=field.help or None)
    if field.kind == "choice":
        return st.selectbox(label, field.choices, key=key, help=field.help or None)
    # No min/max here: an out-of-range value must reach the scores, which refuse it and say why.
    return st.number_input(label, value=None, key=key, step=1.0, format="%g", help=field.help or None)


def risk_form(fields: list[Field]) -> dict[str, Any]:
    """Draw the form in sections; returns the entered values (None for empty numbers)."""
    by_name = {f.name: f for f in fields}
    placed = {name for names in SECTIONS.values() for name in names}
    sections = {title: [by_name[n] for n in names if n in by_name] for title, names in SECTIONS.items()}
    sections["History and medication"] = [f for f in fields if f.name not in placed]
    values: dict[str, Any] = {}
    for column, (title, members) in zip(st.columns(len(sections)), sections.items()):
        with column:
            st.markdown(f"**{title}**")
            for field in members:
                values[field.name] = _widget(field)
    return values
