"""CGM exports into one tidy frame (id, time, gl in mg/dL), detected from content, never from the file name.

Three layouts: the generic `id,time,gl` table iglu uses (optionally with R's unnamed row-index column), a Dexcom
Clarity export (metadata rows, `Event Type` = EGV, "Low"/"High" strings) and a LibreView export (a title row,
the header on row 2, Record Type 0 = historic 15-minute readings, 1 = scans). Every refusal is a ValueError whose
one-line message says what is wrong and where, so the page and the CLI can show it as-is.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medui.uploads import check_upload, decode_text

MGDL, MMOL = "mg/dL", "mmol/L"
# Sensors report 40-400 mg/dL (2.2-22.2 mmol/L); a value under this line is mmol/L, above it mg/dL.
UNIT_SPLIT = 35.0
DEXCOM_LIMITS = {MGDL: (40.0, 400.0), MMOL: (2.2, 22.2)}  # what "Low" / "High" stand for
MISSING = {"", "na", "nan", "null", "none"}
LIBRE_TIME_FORMATS = ("%m-%d-%Y %I:%M %p", "%m-%d-%Y %H:%M", "%d-%m-%Y %H:%M", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M",
                      "%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S")


@dataclass
class CgmData:
    """Readings of one file: `frame` has columns id (str), time (naive local datetime64), gl (float, mg/dL)."""

    frame: pd.DataFrame
    source: str  # "generic", "dexcom" or "libreview"
    units: str  # the units the file was in; `frame.gl` is always mg/dL
    notes: list[str] = field(default_factory=list)  # what was done to the data, for the reader to see


def to_mgdl(values: np.ndarray, units: str) -> np.ndarray:
    # mmol/L exports are device mg/dL divided by 18 and rounded; multiplying by 18 and rounding restores the device
    # value, so 10.0 mmol/L is 180 (in range) and 3.0 is 54, as the consensus mmol/L cut-offs intend.
    return np.round(values * 18.0) if units == MMOL else values.astype(float)


def _header_units(header: str) -> str | None:
    text = header.lower().replace(" ", "")
    return MMOL if "mmol" in text else MGDL if "mg/dl" in text else None


def _numbers(raw: pd.Series, first_line: int, words: dict[str, float] | None = None) -> pd.Series:
    """Glucose strings to floats: blanks are missing, anything else non-numeric, infinite or <= 0 is refused."""
    text = raw.fillna("").astype(str).str.strip()
    missing = text.str.lower().isin(MISSING)
    if words:
        text = text.replace({k: str(v) for k, v in words.items()})
    values = pd.to_numeric(text.where(~missing), errors="coerce")
    bad = ~missing & (values.isna() | ~np.isfinite(values.fillna(0)) | (values <= 0))
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        kind = "not a finite number" if values.isna().iloc[pos] or np.isinf(values.iloc[pos]) else "not a glucose value"
        raise ValueError(f"Line {first_line + pos}: glucose value {text.iloc[pos][:20]!r} is {kind}.")
    return values


def _times(raw: pd.Series, first_line: int, formats: tuple[str, ...] = ()) -> pd.Series:
    text = raw.fillna("").astype(str).str.strip()
    for fmt in (*formats, "ISO8601"):
        times = pd.to_datetime(text, format=fmt, errors="coerce")
        if times.notna().all():
            break
    bad = times.isna().to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(f"Line {first_line + pos}: time {text.iloc[pos][:40]!r} is not a date and time.")
    if getattr(times.dt, "tz", None) is not None:  # keep the wall-clock time: AGP and MODD work by time of day
        times = times.dt.tz_localize(None)
    return times


def _table(text: str, skip: int) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(text), skiprows=skip, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise ValueError(f"This CSV cannot be read: {str(exc).splitlines()[0][:120]}") from None


def _column(table: pd.DataFrame, *needles: str) -> str | None:
    return next((c for c in table.columns if all(n in c.lower() for n in needles)), None)


def _generic(text: str, name: str) -> tuple[pd.DataFrame, str | None, list[str]]:
    table = _table(text, 0)
    cols = {c.strip().lower(): c for c in table.columns}
    frame = pd.DataFrame({"id": table[cols["id"]].astype(str).str.strip(),
                          "time": _times(table[cols["time"]], 2),
                          "gl": _numbers(table[cols["gl"]], 2)})
    return frame, None, []


def _dexcom(text: str, name: str) -> tuple[pd.DataFrame, str | None, list[str]]:
    table = _table(text, 0)
    value_col = _column(table, "glucose value")
    units = _header_units(value_col) or MGDL
    egv = table[table[_column(table, "event type")].str.strip().str.upper() == "EGV"]
    if egv.empty:
        raise ValueError("This Dexcom export has no EGV (sensor glucose) rows.")
    low, high = DEXCOM_LIMITS[units]
    line0 = int(egv.index[0]) + 2
    raw = egv[value_col].str.strip()
    gl = _numbers(raw, line0, {"Low": low, "LOW": low, "High": high, "HIGH": high}).to_numpy()
    notes = []
    if n_limits := int(raw.str.lower().isin(["low", "high"]).sum()):
        notes.append(f"{n_limits} 'Low'/'High' readings counted as the sensor limits {low:g}/{high:g} {units}.")
    times = _times(egv[_column(table, "timestamp")], line0)
    frame = pd.DataFrame({"id": _subject_name(name), "time": times.to_numpy(), "gl": gl})
    return frame, units, notes


def _libreview(text: str, name: str) -> tuple[pd.DataFrame, str | None, list[str]]:
    table = _table(text, 1)
    hist_col, scan_col = _column(table, "historic glucose"), _column(table, "scan glucose")
    record = table[_column(table, "record type")].str.strip()
    units = _header_units(hist_col or scan_col or "")
    notes: list[str] = []
    # The AGP is built from historic (type 0, every 15 min) readings; scans (type 1) are extra spot checks that
    # would double-count the minutes around them, so they are used only when a file has no historic readings.
    rows, col = table[record == "0"], hist_col
    if rows.empty and scan_col:
        rows, col = table[record == "1"], scan_col
        notes.append("No historic readings: the scan readings were used instead.")
    elif (n_scans := int((record == "1").sum())):
        notes.append(f"{n_scans} scan readings were left out; metrics use the historic 15-minute readings.")
    if rows.empty or col is None:
        raise ValueError("This LibreView export has no glucose readings (Record Type 0 or 1).")
    line0 = int(rows.index[0]) + 3
    frame = pd.DataFrame({"id": _subject_name(name),
                          "time": _times(rows[_column(table, "device timestamp")], line0, LIBRE_TIME_FORMATS).to_numpy(),
                          "gl": _numbers(rows[col], line0).to_numpy()})
    return frame, units, notes


def _subject_name(name: str) -> str:
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0].strip()
    return "".join(ch for ch in stem if ch.isprintable())[:64] or "subject"


def _layout(text: str) -> str:
    lines = [line.lower() for line in text.splitlines()[:2]]
    first = [c.strip() for c in next(csv.reader(lines[:1]), [])]
    if len(lines) > 1 and "device timestamp" in lines[1] and "record type" in lines[1]:
        return "libreview"
    if "event type" in lines[0] and "glucose value" in lines[0]:
        return "dexcom"
    if {"id", "time", "gl"} <= set(first):
        return "generic"
    shown = ", ".join(c for c in first[:6] if c)[:100] or "nothing"
    raise ValueError("Not a recognised CGM export: expected a Dexcom Clarity or LibreView CSV, or columns "
                     f"id,time,gl (the first row has: {shown}).")


READERS = {"generic": _generic, "dexcom": _dexcom, "libreview": _libreview}


def parse(data: bytes, name: str) -> tuple[pd.DataFrame, str, str | None, list[str]]:
    """Bytes to (frame with gl in file units, layout, units named in the header or None, notes)."""
    check_upload(data, name, "csv")  # size, type by content (a renamed gzip is refused here), UTF-8
    text = decode_text(data).lstrip("\ufeff")
    layout = _layout(text)
    frame, units, notes = READERS[layout](text, name)
    return frame, layout, units, notes


def resolve_units(gl: np.ndarray, declared: str | None, stated: str | None) -> str:
    """Units from the user (`declared`), the header (`stated`) and the values; contradictions are refused."""
    if declared and stated and declared != stated:
        raise ValueError(f"The file's header says {stated} but {declared} was asked for.")
    claimed = declared or stated
    low = float(np.mean(gl < UNIT_SPLIT))  # share of readings that only make sense in mmol/L
    median = float(np.median(gl))
    if claimed == MGDL and low > 0.5:
        raise ValueError(f"The values are labelled mg/dL but look like mmol/L (median {median:g}): check the export "
                         "or give the units.")
    if claimed == MMOL and low < 0.99:
        raise ValueError(f"The values are labelled mmol/L but {100 * (1 - low):.0f}% are above {UNIT_SPLIT:g}, which "
                         "only mg/dL allows.")
    if claimed:
        return claimed
    if low >= 0.99:
        return MMOL
    if low <= 0.01:
        return MGDL
    raise ValueError(f"Cannot tell the units: {100 * low:.0f}% of readings look like mmol/L and {100 * (1 - low):.0f}%"
                     " like mg/dL. Give the units explicitly, or check whether two files were merged.")


def tidy(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Sorted readings per subject without exact duplicates; conflicting duplicates and lone readings are refused."""
    if (n_missing := int(frame["gl"].isna().sum())):
        notes.append(f"{n_missing} blank glucose values were skipped.")
    frame = frame.dropna(subset=["gl"])
    if frame.empty:
        raise ValueError("The file has no glucose readings.")
    ordered = frame.sort_values(["id", "time"], kind="stable")
    if not ordered.index.equals(frame.index):
        notes.append("The readings were not in time order; they were sorted.")
    exact = ordered.duplicated(["id", "time", "gl"])
    if exact.any():
        notes.append(f"{int(exact.sum())} repeated rows (same time and value) were dropped.")
        ordered = ordered[~exact]
    clash = ordered.duplicated(["id", "time"], keep=False)
    if clash.any():
        first = ordered[clash].iloc[0]
        raise ValueError(f"Subject {first['id']!r} has {int(clash.sum())} readings sharing a timestamp with different "
                         f"values (first at {first['time']:%Y-%m-%d %H:%M}): two sensors or two people in one file?")
    counts = ordered.groupby("id", sort=False).size()
    if (counts < 2).any():
        raise ValueError(f"Subject {counts.index[counts < 2][0]!r} has only one reading; CGM metrics need a series.")
    step = ordered.groupby("id", sort=False)["time"].diff()
    for pos in np.flatnonzero((step > pd.Timedelta(days=1)).to_numpy())[:3]:  # tell about gaps; do not bridge them
        row = ordered.iloc[pos]
        notes.append(f"Subject {row['id']!r} has a gap of {step.iloc[pos] / pd.Timedelta(days=1):.1f} days before "
                     f"{row['time']:%Y-%m-%d %H:%M}; it is not interpolated and lowers the active time.")
    return ordered.reset_index(drop=True)


def load(data: bytes, name: str, units: str | None = None) -> CgmData:
    frame, layout, stated, notes = parse(data, name)
    if frame["gl"].notna().sum() == 0:
        raise ValueError("The file has no glucose readings.")
    unit = resolve_units(frame["gl"].dropna().to_numpy(), units, stated)
    frame = tidy(frame, notes)
    frame["gl"] = to_mgdl(frame["gl"].to_numpy(), unit)
    return CgmData(frame=frame, source=layout, units=unit, notes=notes)
