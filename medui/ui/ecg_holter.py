"""The ECG page's Holter view: the whole recording's summary, then one strip chosen for the full analysis."""

from __future__ import annotations

from typing import Any

import streamlit as st

from medui.signals.ecg import EcgRecord, analyse
from medui.signals.ecg.holter import AF_LABEL, strip
from medui.signals.ecg.plots import holter_trend
from medui.ui.text import markdown_safe

STRIP_S = 10.0
SINUS = "sinus rhythm"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _first_abnormal(summary: dict[str, Any]) -> float:
    """Start of the longest atrial fibrillation episode, else of the longest other non-sinus one: the strip opens
    where a reader would look first."""
    episodes = [e for e in summary.get("rhythm", {}).get("episodes", []) if e["label"] != SINUS]
    if not episodes:
        return 0.0
    return max(episodes, key=lambda e: (e["label"] == AF_LABEL, e["end_s"] - e["start_s"]))["start_s"]


def holter_view(record: EcgRecord, result: dict[str, Any], key: str) -> tuple[EcgRecord, dict[str, Any]]:
    """Draw the summary; return the chosen strip and its full analysis for the rest of the page."""
    summary = result["holter"]
    st.subheader("Holter summary")
    rr = result["rr_ms"]
    cells = st.columns(3) + st.columns(3)
    pauses = summary["pauses"]
    for cell, (label, value) in zip(cells, [
            ("Duration", _clock(result["duration_s"])), ("Beats", f"{len(result['r_peaks']):,}"),
            ("Mean heart rate", f"{result['heart_rate_bpm']:g} bpm" if result["heart_rate_bpm"] else "n/a"),
            ("SDNN", f"{rr['sdnn']:g} ms" if rr["sdnn"] is not None else "n/a"),
            (f"Pauses > {pauses['threshold_s']:g} s", f"{pauses['count']}"
             + (f" (longest {pauses['longest_s']:g} s)" if pauses["count"] else "")),
            ("Tachy / brady minutes", f"{summary['minutes_tachycardic']} / {summary['minutes_bradycardic']}")]):
        cell.metric(label, value)
    for warning in result["warnings"]:
        st.warning(markdown_safe(warning))
    st.plotly_chart(holter_trend(summary), key="ecg_holter_trend")
    rhythm = summary.get("rhythm")
    if rhythm:
        st.markdown(f"**Rhythm burden** over {rhythm['windows']:,} windows of {rhythm['window_s']:g} s "
                    f"(model {result['model']['name']} v{result['model']['version']}, trained on synthetic "
                    "recordings); longest atrial fibrillation run "
                    f"{_clock(rhythm['af_longest_s'])}.")
        st.bar_chart({label: 100 * share for label, share in rhythm["burden"].items()}, horizontal=True, height=180)
        if rhythm["af_longest_s"]:
            st.page_link("pages/risk.py", label="Assess stroke risk in atrial fibrillation (CHA₂DS₂-VASc)",
                         query_params={"score": "cha2ds2vasc"}, icon=":material/arrow_forward:")
    with st.expander("Hour by hour"):
        st.dataframe([{"Hour": _clock(h["hour"] * 3600), "Beats": h["beats"], "Mean (bpm)": h["hr_mean"],
                       "Min (bpm)": h["hr_min"], "Max (bpm)": h["hr_max"]} for h in summary["hours"]], hide_index=True)

    st.subheader("Strip")
    last = max(0.0, result["duration_s"] - STRIP_S)
    start = st.slider("Strip start (seconds from the beginning)", 0.0, last, min(_first_abnormal(summary), last),
                      step=STRIP_S, key=f"ecg_strip_{key[:12]}", format="%d s")
    st.caption(f"The {STRIP_S:g} s from {_clock(start)} analysed in full below: peaks, delineation, rhythm and "
               "where the model looked. It opens on the longest non-sinus episode.")
    cached = st.session_state.get("ecg_strip")
    if not cached or cached[0] != (key, start):
        piece = strip(record, start, STRIP_S)
        try:
            cached = ((key, start), piece, analyse(piece))
        except ValueError as exc:
            st.error(markdown_safe(f"This strip cannot be analysed: {exc}"))
            st.stop()
        st.session_state["ecg_strip"] = cached
    return cached[1], cached[2]
