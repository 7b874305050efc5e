"""The Ambulatory Glucose Profile: modal-day percentiles, daily traces, time in ranges and episodes, as plotly figures.

Figures draw in the file's units (mmol/L files stay in mmol/L); the data passed in are mg/dL. Static PNG/PDF export
needs kaleido and a headless browser, which this deployment does not ship, so the report is a self-contained HTML
file (print it to PDF from the browser).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medui.signals.cgm.formats import MMOL

BANDS = (("Very low (<54 mg/dL)", "#8b0000"), ("Low (54-69)", "#e03b3b"), ("In range (70-180)", "#3aa657"),
         ("High (181-250)", "#f2b233"), ("Very high (>250)", "#e57b22"))
EPISODES = (("Level 2 hypoglycaemia", "<", 54), ("Level 1 hypoglycaemia", "<", 70),
            ("Level 1 hyperglycaemia", ">", 180), ("Level 2 hyperglycaemia", ">", 250))
MIN_EPISODE_MIN = 15  # consensus: an episode lasts at least 15 minutes
MAX_STEP_MIN = 45  # readings further apart end an episode (as iglu will not interpolate over them)


def _scale(units: str) -> float:
    return 18.0 if units == MMOL else 1.0


def profile(rows: pd.DataFrame, bin_min: int = 15) -> pd.DataFrame:
    """Percentiles 5/25/50/75/95 of all readings in each `bin_min` slot of the day, smoothed over ±1 slot (circular)."""
    minute = rows["time"].dt.hour * 60 + rows["time"].dt.minute
    slot = (minute // bin_min) * bin_min
    table = rows.groupby(slot)["gl"].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack()
    table = table.reindex(range(0, 1440, bin_min))
    padded = pd.concat([table.iloc[-1:], table, table.iloc[:1]])  # wrap midnight so the ends smooth alike
    smooth = padded.rolling(3, center=True, min_periods=1).mean().iloc[1:-1]
    smooth.columns = ["p5", "p25", "p50", "p75", "p95"]
    return smooth


def agp_figure(rows: pd.DataFrame, units: str) -> go.Figure:
    prof = profile(rows) / _scale(units)
    hours = prof.index / 60
    fig = go.Figure()
    for lo, hi, colour, name in (("p5", "p95", "rgba(70,110,200,0.18)", "5-95%"),
                                 ("p25", "p75", "rgba(70,110,200,0.45)", "25-75%")):
        fig.add_scatter(x=hours, y=prof[hi], line={"width": 0}, showlegend=False, hoverinfo="skip")
        fig.add_scatter(x=hours, y=prof[lo], fill="tonexty", fillcolor=colour, line={"width": 0}, name=name)
    fig.add_scatter(x=hours, y=prof["p50"], line={"color": "#1f3d7a", "width": 3}, name="Median")
    for limit in (70, 180):
        fig.add_hline(y=limit / _scale(units), line={"color": "#3aa657", "dash": "dash"})
    fig.update_layout(title="Ambulatory glucose profile (modal day)", xaxis_title="Hour of day",
                      yaxis_title=f"Glucose ({units})", xaxis={"range": [0, 24], "dtick": 3}, height=380)
    return fig


def daily_figure(rows: pd.DataFrame, units: str, columns: int = 7) -> go.Figure:
    """One small panel per calendar day, as the AGP report's daily views."""
    days = rows["time"].dt.normalize()
    unique = days.unique()
    n_rows = -(-len(unique) // columns)
    fig = make_subplots(rows=n_rows, cols=columns, shared_yaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"{d:%a %d %b}" for d in unique])
    hours = (rows["time"] - days).dt.total_seconds() / 3600
    for n, day in enumerate(unique):
        mask = (days == day).to_numpy()
        fig.add_scatter(x=hours[mask], y=rows["gl"].to_numpy()[mask] / _scale(units), mode="lines",
                        line={"width": 1, "color": "#1f3d7a"}, showlegend=False, row=n // columns + 1,
                        col=n % columns + 1)
    for limit in (70, 180):
        fig.add_hline(y=limit / _scale(units), line={"color": "#3aa657", "width": 1, "dash": "dot"})
    fig.update_xaxes(range=[0, 24], showticklabels=False)
    fig.update_layout(title="Daily glucose profiles", height=170 * n_rows + 60, margin={"t": 70})
    return fig


def range_shares(metrics: dict[str, float]) -> list[float]:
    """The five exclusive bands from iglu's cumulative percentages."""
    m = metrics
    return [m["pct_below_54"], m["pct_below_70"] - m["pct_below_54"], m["pct_in_70_180"],
            m["pct_above_180"] - m["pct_above_250"], m["pct_above_250"]]


def ranges_figure(metrics: dict[str, float]) -> go.Figure:
    fig = go.Figure()
    for (name, colour), share in zip(BANDS, range_shares(metrics)):
        fig.add_bar(x=["Time in ranges"], y=[share], name=f"{name}: {share:.1f}%", marker_color=colour,
                    text=f"{share:.1f}%", textposition="inside")
    fig.update_layout(barmode="stack", yaxis={"range": [0, 100], "title": "% of readings"}, height=380, width=360,
                      legend={"traceorder": "reversed"}, title="Time in ranges")
    return fig


def episodes(rows: pd.DataFrame) -> pd.DataFrame:
    """Runs of readings beyond each threshold lasting at least 15 minutes (each reading covers one sampling step)."""
    times, gl = rows["time"].to_numpy(), rows["gl"].to_numpy()
    steps = np.diff(times).astype("timedelta64[s]").astype(float) / 60
    step = float(np.median(steps)) if len(steps) else 5.0
    out = []
    for name, op, limit in EPISODES:
        beyond = gl < limit if op == "<" else gl > limit
        # A run continues while readings stay beyond the limit and no gap exceeds MAX_STEP_MIN.
        breaks = np.concatenate(([True], ~beyond[1:] | ~beyond[:-1] | (steps > MAX_STEP_MIN)))
        run = np.cumsum(breaks)
        frame = pd.DataFrame({"run": run[beyond], "time": times[beyond], "gl": gl[beyond]})
        for _, r in frame.groupby("run"):
            minutes = (r["time"].iloc[-1] - r["time"].iloc[0]).total_seconds() / 60 + step
            if minutes >= MIN_EPISODE_MIN:
                extreme = r["gl"].min() if op == "<" else r["gl"].max()
                out.append({"episode": name, "start": r["time"].iloc[0], "end": r["time"].iloc[-1],
                            "minutes": round(minutes), "extreme_mgdl": float(extreme)})
    return pd.DataFrame(out, columns=["episode", "start", "end", "minutes", "extreme_mgdl"])


def report_html(subject: str, metric_rows: list[dict[str, str]], figures: list[go.Figure], notes: list[str]) -> str:
    """A standalone HTML report; every text from the file (the subject id, notes) is escaped."""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in metric_rows[0]) if metric_rows else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>"
                   for r in metric_rows)
    plots = "".join(f.to_html(full_html=False, include_plotlyjs=(n == 0)) for n, f in enumerate(figures))
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>AGP report</title></head><body>"
            f"<h1>AGP report: {html.escape(subject)}</h1><ul>{notes_html}</ul>"
            f"<table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>{plots}</body></html>")
