"""The AGP report as one static A4 page (PDF or PNG), drawn with matplotlib, for readers without a browser.

    pdf = agp_pdf(cgm, "synthetic-A")           # bytes of a one-page PDF
    png = agp_png(cgm, "synthetic-A")           # bytes of a 150-dpi PNG of the same page

The page holds the title (subject, dates, days, readings, data sufficiency), the consensus metrics with the
Battelino 2019 targets (`metric_table`), the five-band time in ranges and the modal-day percentiles (`agp.profile`),
in the file's units as the plotly figures are. Only the Figure API is used (no pyplot), so no global state changes.
Every text taken from the file (the subject id) is drawn as plain text: mathtext parsing is off.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medui.signals.cgm import CgmData, analyse, metric_table
from medui.signals.cgm.agp import BANDS, _scale, profile, range_shares

A4_INCHES = (210 / 25.4, 297 / 25.4)
PNG_DPI = 150
_PLAIN = {"parse_math": False, "usetex": False}  # never interpret text from the file (e.g. "$...$") as markup


def _subject(cgm: CgmData, subject_id: str) -> tuple[CgmData, dict]:
    rows = cgm.frame[cgm.frame["id"] == subject_id]
    if rows.empty:
        raise ValueError(f"No readings for subject {subject_id!r}.")
    one = CgmData(frame=rows, source=cgm.source, units=cgm.units, notes=list(cgm.notes))
    return one, analyse(one)["subjects"][0]


def _title_lines(rows, subject: dict) -> list[str]:
    first, last = rows["time"].min(), rows["time"].max()
    metrics = subject["metrics"]
    if subject["sufficient"]:
        sufficiency = "Sufficient data (at least 14 days with at least 70% of possible readings)."
    else:
        active = metrics.get("active_percent")
        sufficiency = ("Not enough data for a reliable report: the consensus asks for at least 14 days with at least "
                       f"70% of possible readings (here {subject['days']} days, "
                       f"{active if active is not None else float('nan'):.0f}% active).")
    return [f"{first:%d %b %Y} to {last:%d %b %Y}: {subject['days']} days, {subject['readings']} readings.",
            sufficiency]


def agp_figure_static(cgm: CgmData, subject_id: str) -> Figure:
    """The report page as a matplotlib Figure (A4 portrait)."""
    one, subject = _subject(cgm, subject_id)
    rows, units, metrics = one.frame, one.units, subject["metrics"]
    fig = Figure(figsize=A4_INCHES)
    FigureCanvasAgg(fig)
    fig.text(0.09, 0.97, "AGP report", fontsize=15, weight="bold", va="top", **_PLAIN)
    fig.text(0.09, 0.947, f"Subject: {subject_id}", fontsize=12, va="top", **_PLAIN)
    lines = _title_lines(rows, subject)
    fig.text(0.09, 0.924, lines[0], fontsize=9.5, va="top", **_PLAIN)
    fig.text(0.09, 0.907, lines[1], fontsize=9, va="top", wrap=True,
             color="#2e7d32" if subject["sufficient"] else "#b00020", **_PLAIN)

    grid = fig.add_gridspec(2, 2, left=0.09, right=0.96, top=0.845, bottom=0.05, width_ratios=[3.2, 1],
                            height_ratios=[1.3, 1], hspace=0.3, wspace=0.25)
    # Metrics with targets
    table_ax = fig.add_subplot(grid[0, 0])
    table_ax.axis("off")
    table_ax.set_title("Consensus metrics (iglu definitions)", fontsize=11, loc="left")
    mrows = metric_table(metrics, units)
    columns = list(mrows[0])
    table = table_ax.table(cellText=[[r[c] for c in columns] for r in mrows], colLabels=columns,
                           colWidths=[0.34, 0.35, 0.31], cellLoc="left", loc="upper left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (r, _), cell in table.get_celld().items():
        cell.set_height(1 / (len(mrows) + 1))
        cell.get_text().set_parse_math(False)
        if r == 0:
            cell.get_text().set_weight("bold")
            cell.set_facecolor("#e8edf5")

    # Time in ranges: five stacked bands
    bar_ax = fig.add_subplot(grid[0, 1])
    bottom = 0.0
    for (name, colour), share in zip(BANDS, range_shares(metrics)):
        bar_ax.bar([0], [share], bottom=bottom, color=colour, width=0.6, label=f"{name}: {share:.1f}%")
        if share >= 4:
            bar_ax.text(0, bottom + share / 2, f"{share:.1f}%", ha="center", va="center", fontsize=8, color="white",
                        **_PLAIN)
        bottom += share
    bar_ax.set_xlim(-0.5, 0.5)
    bar_ax.set_ylim(0, 100)
    bar_ax.set_xticks([])
    bar_ax.set_ylabel("% of readings", fontsize=8)
    bar_ax.tick_params(labelsize=7)
    bar_ax.set_title("Time in ranges", fontsize=11, loc="left")
    handles, labels = bar_ax.get_legend_handles_labels()
    bar_ax.legend(handles[::-1], labels[::-1], fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.02),
                  frameon=False)

    # Modal day: percentile bands
    agp_ax = fig.add_subplot(grid[1, :])
    prof = profile(rows) / _scale(units)
    hours = prof.index / 60
    agp_ax.fill_between(hours, prof["p5"], prof["p95"], color=(70 / 255, 110 / 255, 200 / 255, 0.18), lw=0,
                        label="5-95%")
    agp_ax.fill_between(hours, prof["p25"], prof["p75"], color=(70 / 255, 110 / 255, 200 / 255, 0.45), lw=0,
                        label="25-75%")
    agp_ax.plot(hours, prof["p50"], color="#1f3d7a", lw=2, label="Median")
    for limit in (70, 180):
        agp_ax.axhline(limit / _scale(units), color="#3aa657", ls="--", lw=1)
    agp_ax.set_xlim(0, 24)
    agp_ax.set_xticks(range(0, 25, 3))
    agp_ax.set_xlabel("Hour of day", fontsize=9)
    agp_ax.set_ylabel(f"Glucose ({units})", fontsize=9)
    agp_ax.tick_params(labelsize=8)
    target = "70-180 mg/dL" + (" (3.9-10.0 mmol/L)" if units != "mg/dL" else "")
    agp_ax.set_title(f"Ambulatory glucose profile (modal day; target range {target} dashed)", fontsize=10.5,
                     loc="left")
    agp_ax.legend(fontsize=8, loc="upper right")
    agp_ax.grid(alpha=0.3)
    return fig


def _render(cgm: CgmData, subject_id: str, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    agp_figure_static(cgm, subject_id).savefig(out, format=fmt, **kwargs)
    return out.getvalue()


def agp_pdf(cgm: CgmData, subject_id: str) -> bytes:
    """A one-page A4 PDF of the subject's AGP report."""
    return _render(cgm, subject_id, "pdf", metadata={"Title": "AGP report", "Creator": "MedUI"})


def agp_png(cgm: CgmData, subject_id: str) -> bytes:
    """The same A4 page as a PNG at 150 dpi."""
    return _render(cgm, subject_id, "png", dpi=PNG_DPI)
