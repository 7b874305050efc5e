"""Continuous glucose monitoring: read an export, compute iglu's consensus metrics per subject, draw the AGP.

    cgm = read_cgm(data, "export.csv")          # ValueError / UploadRejected with a one-line reason
    result = analyse(cgm)                        # {"source", "units", "subjects": [{"id", "metrics", ...}]}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from medui.signals.cgm import samples as _samples  # noqa: F401  (registers the Glucose page's samples)
from medui.signals.cgm.formats import MGDL, MMOL, CgmData, load
from medui.signals.cgm.metrics import subject_metrics

__all__ = ["CONSENSUS", "LABELS", "MGDL", "MMOL", "CgmData", "analyse", "metric_table", "minutes_of", "read_cgm"]

UNIT_NAMES = {None: None, "mgdl": MGDL, "mg/dl": MGDL, "mmol": MMOL, "mmol/l": MMOL}
MIN_DAYS, MIN_ACTIVE = 14, 70.0  # Battelino 2019: at least 14 days with at least 70% of possible readings
# Battelino et al., Diabetes Care 2019;42:1593 (adults with type 1/type 2 diabetes): metric -> (relation, target).
CONSENSUS = {
    "pct_in_70_180": (">", 70.0), "pct_below_70": ("<", 4.0), "pct_below_54": ("<", 1.0),
    "pct_above_180": ("<", 25.0), "pct_above_250": ("<", 5.0), "cv": ("≤", 36.0),
    "active_percent": ("≥", MIN_ACTIVE), "days": ("≥", float(MIN_DAYS)),
}


def read_cgm(data: bytes, name: str, units: str | None = None) -> CgmData:
    """Read a CGM export (generic id,time,gl / Dexcom Clarity / LibreView); units 'mgdl' or 'mmol' override."""
    key = units.strip().lower() if isinstance(units, str) else None
    if key not in UNIT_NAMES:
        raise ValueError(f"Unknown units {units!r}: use mgdl or mmol.")
    return load(data, name, UNIT_NAMES[key])


def minutes_of(times: pd.Series) -> np.ndarray:
    """Naive datetimes as minutes since 1970-01-01 00:00, so that day boundaries fall on multiples of 1440."""
    return times.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 6e10


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value  # JSON has no NaN


def analyse(cgm: CgmData) -> dict[str, Any]:
    subjects = []
    for subject, rows in cgm.frame.groupby("id", sort=False):
        metrics = {k: _clean(v) for k, v in subject_metrics(minutes_of(rows["time"]), rows["gl"].to_numpy()).items()}
        subjects.append({"id": str(subject), "metrics": metrics, "days": metrics["days"],
                         "readings": metrics["readings"],
                         "sufficient": metrics["days"] >= MIN_DAYS and metrics["active_percent"] >= MIN_ACTIVE})
    return {"source": cgm.source, "units": cgm.units, "subjects": subjects}


LABELS = {
    "mean": "Mean glucose", "sd": "SD", "cv": "CV (%)", "gmi": "GMI (%)", "ea1c": "eA1c (%)",
    "pct_in_70_180": "Time in range 70-180 (%)", "pct_below_54": "Time <54 (%)", "pct_below_70": "Time <70 (%)",
    "pct_above_180": "Time >180 (%)", "pct_above_250": "Time >250 (%)", "lbgi": "LBGI", "hbgi": "HBGI",
    "gri": "GRI", "mage": "MAGE", "conga": "CONGA (24 h)", "modd": "MODD", "j_index": "J-index",
    "active_percent": "CGM active (%)", "days": "Days", "readings": "Readings",
}
IN_GLUCOSE_UNITS = {"mean", "sd", "mage", "conga", "modd"}  # shown in mmol/L too for mmol/L files


def metric_table(metrics: dict[str, Any], units: str) -> list[dict[str, str]]:
    """Rows of (metric, value, consensus target) for people; glucose-valued metrics also in mmol/L if asked."""
    rows = []
    for key, label in LABELS.items():
        value = metrics.get(key)
        text = "n/a" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
        if key in IN_GLUCOSE_UNITS and value is not None:
            text = f"{value:.1f} mg/dL" + (f" ({value / 18:.1f} mmol/L)" if units == MMOL else "")
        relation, target = CONSENSUS.get(key, ("", None))
        rows.append({"Metric": label, "Value": text, "Target (Battelino 2019)": f"{relation} {target:g}" if target else ""})
    return rows

