"""Plotly figures for the Risk page: a gauge per score and the learned model's signed contributions."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

CALM_BLUE, WARM_RED = "#1f6f8b", "#b5443b"


def gauge(value: float, maximum: float, unit: str) -> go.Figure:
    """A half-dial from 0 to the score's maximum (the card around it carries the title)."""
    figure = go.Figure(go.Indicator(
        mode="gauge+number", value=value, number={"suffix": "%" if unit == "%" else ""},
        gauge={"axis": {"range": [0, maximum]}, "bar": {"color": CALM_BLUE}},
    ))
    figure.update_layout(height=170, margin={"l": 25, "r": 25, "t": 20, "b": 10})
    return figure


def attribution_chart(attributions: list[dict[str, Any]]) -> go.Figure:
    """Signed bars in percentage points: red raises the risk, blue lowers it."""
    shown = list(reversed(attributions))  # largest at the top
    points = [100 * a["contribution"] for a in shown]
    figure = go.Figure(go.Bar(
        x=points, y=[f"{a.get('label', a['feature'])} = {a['value']}" for a in shown], orientation="h",
        marker_color=[WARM_RED if p > 0 else CALM_BLUE for p in points],
        hovertemplate="%{x:+.1f} percentage points<extra></extra>",
    ))
    figure.update_layout(height=60 + 26 * len(shown), margin={"l": 10, "r": 10, "t": 10, "b": 30},
                         xaxis_title="change in 10-year risk vs. the baseline population (percentage points)")
    return figure


def reliability_chart(curve: list[dict[str, Any]]) -> go.Figure:
    """Calibration plot: observed event rate against mean predicted risk per bin, with the diagonal."""
    top = max(max(c["mean_predicted"], c["observed"]) for c in curve) * 100 * 1.1
    figure = go.Figure([
        go.Scatter(x=[0, top], y=[0, top], mode="lines", line={"dash": "dot", "color": "#999"}, name="perfect"),
        go.Scatter(x=[100 * c["mean_predicted"] for c in curve], y=[100 * c["observed"] for c in curve],
                   mode="lines+markers", marker={"color": CALM_BLUE}, name="model",
                   text=[f"{c['n']} people" for c in curve]),
    ])
    figure.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 30}, showlegend=False,
                         xaxis_title="predicted 10-year risk (%)", yaxis_title="observed (%)")
    return figure
