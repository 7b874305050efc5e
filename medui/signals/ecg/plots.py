"""Plotly figures for the ECG page: multi-lead trace on ECG paper, attribution band, beat overlay, tachogram."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medui.signals.ecg.formats import EcgRecord

TRACE, PEAK, PAPER_MAJOR, PAPER_MINOR = "#1d2a33", "#b5443b", "#f2b8b5", "#fbe3e2"


def _paper(figure: go.Figure, row: int) -> None:
    """25 mm/s, 10 mm/mV paper: major lines every 0.2 s and 0.5 mV, minor every 0.04 s and 0.1 mV."""
    figure.update_xaxes(dtick=0.2, gridcolor=PAPER_MAJOR, minor={"dtick": 0.04, "gridcolor": PAPER_MINOR,
                                                                   "showgrid": True}, row=row, col=1)
    figure.update_yaxes(dtick=0.5, gridcolor=PAPER_MAJOR, minor={"dtick": 0.1, "gridcolor": PAPER_MINOR,
                                                                   "showgrid": True}, row=row, col=1)


def ecg_figure(record: EcgRecord, result: dict[str, Any], leads: list[int], paper: bool = True,
               attribution: np.ndarray | None = None, band_title: str = "model") -> go.Figure:
    """The chosen leads stacked on one time axis, R-peaks on the analysed lead, and an optional attribution band
    (red: pushed the model towards its prediction, blue: away from it), its axis titled `band_title` (the method)."""
    rows = len(leads) + (attribution is not None)
    heights = [1.0] * len(leads) + ([0.25] if attribution is not None else [])
    figure = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.01, row_heights=heights)
    time = np.arange(record.signals.shape[1]) / record.fs
    peaks = np.asarray(result["r_peaks"], dtype=int)
    for row, index in enumerate(leads, start=1):
        name = record.lead_names[index]
        figure.add_trace(go.Scattergl(x=time, y=record.signals[index], mode="lines", line={"color": TRACE, "width": 1},
                                      name=name, hovertemplate="%{x:.3f} s, %{y:.2f} mV"), row=row, col=1)
        if name == result["analysed_lead"] and len(peaks):
            figure.add_trace(go.Scattergl(x=time[peaks], y=record.signals[index][peaks], mode="markers",
                                          marker={"color": PEAK, "size": 7, "symbol": "triangle-down"},
                                          name="R-peaks"), row=row, col=1)
        figure.update_yaxes(title_text=f"{name} (mV)", row=row, col=1)
        if paper:
            _paper(figure, row)
    if attribution is not None:
        limit = float(np.max(np.abs(attribution))) or 1.0
        figure.add_trace(go.Heatmap(z=[attribution], x=time, zmin=-limit, zmax=limit, colorscale="RdBu_r",
                                    showscale=False, hovertemplate="%{x:.2f} s: %{z:.3g}<extra></extra>"),
                         row=rows, col=1)
        figure.update_yaxes(showticklabels=False, title_text=band_title, row=rows, col=1)
    figure.update_xaxes(title_text="time (s)", row=rows, col=1)
    figure.update_layout(height=170 * len(leads) + 90, margin={"l": 10, "r": 10, "t": 10, "b": 40},
                         showlegend=False, plot_bgcolor="white")
    return figure


def beat_overlay(cleaned: np.ndarray, peaks: list[int], fs: float) -> go.Figure:
    """Every beat from 250 ms before to 450 ms after its R-peak, with the median beat drawn bold."""
    before, after = int(0.25 * fs), int(0.45 * fs)
    beats = np.array([cleaned[p - before:p + after] for p in peaks if p - before >= 0 and p + after <= len(cleaned)])
    time = (np.arange(before + after) - before) / fs * 1000
    figure = go.Figure([go.Scattergl(x=time, y=beat, mode="lines", line={"color": "#9bb8c4", "width": 1},
                                     hoverinfo="skip") for beat in beats])
    if len(beats):
        figure.add_trace(go.Scatter(x=time, y=np.median(beats, axis=0), mode="lines",
                                    line={"color": TRACE, "width": 3}, name="median beat"))
    figure.update_layout(height=300, showlegend=False, margin={"l": 10, "r": 10, "t": 10, "b": 40},
                         xaxis_title="ms from R-peak", yaxis_title="cleaned signal")
    return figure


def tachogram(peaks: list[int], fs: float) -> go.Figure:
    """RR interval against time: irregularity shows at a glance."""
    peaks_s = np.asarray(peaks, dtype=float) / fs
    figure = go.Figure(go.Scatter(x=peaks_s[1:], y=np.diff(peaks_s) * 1000, mode="lines+markers",
                                  line={"color": TRACE}, marker={"size": 5}))
    figure.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 40}, xaxis_title="time (s)",
                         yaxis_title="RR interval (ms)")
    return figure


EPISODE_COLOURS = {"atrial fibrillation": "#d62728", "sinus tachycardia": "#ff7f0e", "sinus bradycardia": "#1f77b4",
                   "ectopic beats": "#9467bd"}


def holter_trend(summary: dict[str, Any]) -> go.Figure:
    """Heart rate per minute over the whole recording, with the rhythm model's non-sinus episodes shaded."""
    rates = summary["hr_per_minute"]
    hours = np.arange(len(rates)) / 60
    figure = go.Figure(go.Scatter(x=hours, y=rates, mode="lines", line={"color": TRACE}, name="heart rate",
                                  connectgaps=False))
    for episode in summary.get("rhythm", {}).get("episodes", []):
        colour = EPISODE_COLOURS.get(episode["label"])
        if colour:
            figure.add_vrect(x0=episode["start_s"] / 3600, x1=episode["end_s"] / 3600, fillcolor=colour, opacity=0.25,
                             line_width=0)
    for label, colour in EPISODE_COLOURS.items():  # legend entries for the shading
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker={"color": colour, "symbol": "square"},
                                    name=label))
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 40}, xaxis_title="hours from start",
                         yaxis_title="heart rate (bpm, per minute)", legend={"orientation": "h"})
    return figure
