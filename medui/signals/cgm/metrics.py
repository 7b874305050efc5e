"""The consensus CGM metrics, computed as R's iglu package (the reference implementation) defines them.

All values are in mg/dL, as iglu assumes. Functions take one subject's readings: `minutes` (float, sorted, unique)
and `gl` (float, no NaN). Summary metrics use the raw readings; CONGA, MODD and MAGE first interpolate onto a
regular grid with iglu's `CGMS2DayByDay`, ported in `day_by_day` below.
"""

from __future__ import annotations

import math

import numpy as np

INTER_GAP = 45  # minutes; iglu does not interpolate across longer gaps
MAGE_SHORT, MAGE_LONG, MAGE_MAX_GAP = 5, 32, 180  # iglu mage(): short_ma, long_ma, max_gap defaults


def day_by_day(minutes: np.ndarray, gl: np.ndarray, dt0: int | None = None,
               inter_gap: int = INTER_GAP) -> tuple[np.ndarray, int] | None:
    """iglu's CGMS2DayByDay: linear interpolation on a dt0 grid starting dt0 after midnight of the first day.

    Returns (days x slots matrix, dt0), or None where iglu stops (readings further apart than inter_gap).
    """
    if dt0 is None:
        dt0 = int(np.round(np.median(np.diff(minutes))))  # R: round(median(timediff)), half to even like numpy
    if dt0 > inter_gap or dt0 <= 0:
        return None
    if 1440 % dt0:  # iglu: a grid that does not tile the day is set to 20 min or rounded to a multiple of 5
        dt0 = 20 if dt0 > 20 else dt0 + 5 - dt0 % 5 if dt0 % 5 > 2 else dt0 - dt0 % 5
    midnight = math.floor(minutes[0] / 1440) * 1440
    ndays = math.ceil((minutes[-1] - minutes[0]) / 1440 + 1)  # iglu: ceiling(span in days + 1)
    grid = midnight + dt0 * np.arange(1, ndays * 1440 // dt0 + 1)
    values = np.interp(grid, minutes, gl, left=np.nan, right=np.nan)
    # No interpolation strictly inside a gap longer than inter_gap (iglu sets those grid points to NA).
    before = np.searchsorted(minutes, grid, side="right") - 1
    long_gap = np.append(np.diff(minutes) > inter_gap, False)
    inside = (before >= 0) & (before < len(minutes) - 1)
    values[inside & long_gap[np.clip(before, 0, None)] & (grid > minutes[np.clip(before, 0, None)])] = np.nan
    return values.reshape(ndays, 1440 // dt0), dt0


def conga(minutes: np.ndarray, gl: np.ndarray, hours: int = 24) -> float:
    """SD of differences between grid values `hours` apart (iglu conga, n = 24 by default)."""
    grid = day_by_day(minutes, gl)
    if grid is None:
        return math.nan
    flat, dt0 = grid[0].ravel(), grid[1]
    lag = round(60 / dt0) * hours
    diffs = flat[lag:] - flat[:-lag]
    diffs = diffs[~np.isnan(diffs)]
    return float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan


def modd(minutes: np.ndarray, gl: np.ndarray, lag_days: int = 1) -> float:
    """Mean absolute difference between grid values at the same time on consecutive days (iglu modd)."""
    grid = day_by_day(minutes, gl)
    if grid is None:
        return math.nan
    matrix = grid[0]
    diffs = np.abs(matrix[lag_days:] - matrix[:-lag_days])
    return float(np.nanmean(diffs)) if np.isfinite(diffs).any() else math.nan


def _rolling_mean(x: np.ndarray, width: int) -> np.ndarray:
    """zoo::rollapply(mean, na.rm = TRUE, align = 'right'), leading values filled with the first full window."""
    ok = ~np.isnan(x)
    sums = np.cumsum(np.where(ok, x, 0.0))
    counts = np.cumsum(ok)
    sums[width:] -= sums[:-width].copy()
    counts[width:] -= counts[:-width].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / counts
    out[:width] = out[width - 1]
    return out


def _crossings(gl: np.ndarray, delta: np.ndarray) -> tuple[list[int], list[bool]]:
    """Where the short moving average crosses the long one; True marks a peak region (iglu REL_MAX)."""
    ids, peak = [0], [bool(delta[0] > 0)]
    d, g = delta.tolist(), gl.tolist()  # plain floats: this loop is sequential (a crossing depends on the last one)
    for i in range(1, len(d)):
        if g[i] != g[i] or g[i - 1] != g[i - 1] or d[i] != d[i] or d[i - 1] != d[i - 1]:
            continue  # NaN: iglu only tests points whose value and neighbour are both known
        last = d[ids[-1]]
        if d[i] * d[i - 1] < 0:
            ids.append(i), peak.append(d[i] >= d[i - 1])
        elif d[i] * last < 0:  # after a gap, compare with the last crossing instead
            ids.append(i), peak.append(d[i] >= last)
    ids.append(len(d) - 1), peak.append(bool(d[-1] > 0))
    return ids, peak


def _excursions(minmax: np.ndarray, sd: float, sign: int) -> list[float]:
    """iglu's excursion elimination: nadir-to-peak (sign 1) or peak-to-nadir (sign -1) rises of at least one SD."""
    m = (sign * minmax).tolist()  # mirror the peak-to-nadir case so one loop serves both directions
    n, heights = len(m), []
    j = prev_j = 0
    while j < n:
        window = m[prev_j:j + 1]
        low = min(window)
        i = window.index(low) + prev_j
        if m[j] - low >= sd:
            for k in range(j, n):
                if m[k] > m[j]:
                    j = k
                if m[k] - m[j] < -sd or k == n - 1:
                    heights.append(sign * (m[j] - m[i]))
                    prev_j, j = (k if sign > 0 else j), k
                    break
        else:
            j += 1
    return heights


def _mage_segment(gl: np.ndarray) -> tuple[float, float] | None:
    """(MAGE+, MAGE-) of one gap-free stretch as iglu's mage_atomic; None where iglu returns NA."""
    if len(gl) < 7 or len(gl) < MAGE_LONG or np.isnan(gl).all():
        return None
    delta = _rolling_mean(gl, MAGE_SHORT) - _rolling_mean(gl, MAGE_LONG)
    ids, peak = _crossings(gl, delta)
    minmax, index = [], []
    for n in range(len(ids) - 1):
        lo = ids[0] if n == 0 else index[-1]
        window = gl[lo:ids[n + 1] + 1]
        at = int(np.nanargmax(window) if peak[n] else np.nanargmin(window)) if np.isfinite(window).any() else 0
        minmax.append(window[at])
        index.append(lo + at)
    sd = float(np.nanstd(gl, ddof=1))
    if not sd > 0:
        return None  # a flat trace has no excursions (and iglu's loop would not end)
    plus, minus = _excursions(np.asarray(minmax), sd, 1), _excursions(np.asarray(minmax), sd, -1)
    if not plus and not minus:
        return None
    return (float(np.mean(plus)) if plus else math.nan, abs(float(np.mean(minus))) if minus else math.nan)


def mage(minutes: np.ndarray, gl: np.ndarray) -> float:
    """iglu mage(version = 'ma', direction = 'avg'): moving-average crossings on a 5-minute grid.

    The trace is split at gaps over 3 h; each stretch gives MAGE+ and MAGE-, and their mean is weighted by the
    stretch's duration, as iglu does.
    """
    grid = day_by_day(minutes, gl, dt0=5)
    if grid is None:
        return math.nan
    flat = grid[0].ravel()
    known = np.flatnonzero(~np.isnan(flat))
    if len(known) == 0:
        return math.nan
    flat = flat[known[0]:known[-1] + 1]
    # Split at runs of missing grid points longer than max_gap (iglu: run length * dt0 > max_gap).
    missing = np.isnan(flat).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], missing, [0]))))
    runs = edges.reshape(-1, 2)
    long_runs = runs[(runs[:, 1] - runs[:, 0]) * 5 > MAGE_MAX_GAP]
    bounds = np.concatenate(([0], long_runs.ravel(), [len(flat)])).reshape(-1, 2)
    values, weights = [], []
    for start, stop in bounds:
        result = _mage_segment(flat[start:stop]) if stop > start else None
        for value in result or ():
            if not math.isnan(value):
                values.append(value)
                weights.append((stop - 1 - start) * 5.0)  # segment duration: end time - start time
    if not values:
        return math.nan
    w = np.asarray(weights)
    return float(np.dot(values, w / w.sum())) if w.sum() > 0 else float(np.mean(values))


def active_percent(minutes: np.ndarray) -> tuple[float, float]:
    """(percent of the wear period with readings, days from first to last reading), as iglu active_percent.

    iglu computes dt0 once from the first subject and reuses it; here each subject gets its own (as iglu-python).
    """
    diffs = np.diff(minutes)
    dt0 = float(np.round(np.median(diffs)))
    theoretical = np.round(np.round(minutes[-1] - minutes[0]) / dt0) + 1
    gaps = diffs[np.round(diffs) > dt0]
    missing = np.round((gaps.sum() - len(gaps) * dt0) / dt0)
    return float((theoretical - missing) / theoretical * 100), float((minutes[-1] - minutes[0]) / 1440)


def summary(gl: np.ndarray) -> dict[str, float]:
    """The metrics of the raw readings (iglu: mean_glu, sd_glu, ..., gri, j_index)."""
    n, mean, sd = len(gl), float(np.mean(gl)), float(np.std(gl, ddof=1))
    pct = {
        "pct_in_70_180": np.count_nonzero((gl >= 70) & (gl <= 180)),  # iglu in_range_percent: inclusive bounds
        "pct_below_54": np.count_nonzero(gl < 54),  # below_percent: strict, cumulative (<70 includes <54)
        "pct_below_70": np.count_nonzero(gl < 70),
        "pct_above_180": np.count_nonzero(gl > 180),  # above_percent: strict, cumulative (>180 includes >250)
        "pct_above_250": np.count_nonzero(gl > 250),
    }
    pct = {k: 100.0 * v / n for k, v in pct.items()}
    fbg = 1.509 * (np.log(gl) ** 1.084 - 5.381)  # Kovatchev's symmetrised BG scale
    gri = (3.0 * pct["pct_below_54"] + 2.4 * (pct["pct_below_70"] - pct["pct_below_54"])
           + 1.6 * pct["pct_above_250"] + 0.8 * (pct["pct_above_180"] - pct["pct_above_250"]))
    return {
        "mean": mean, "sd": sd, "cv": 100 * sd / mean,
        "gmi": 3.31 + 0.02392 * mean,  # Bergenstal 2018, %
        "ea1c": (46.7 + mean) / 28.7,  # Nathan 2008, %
        **pct,
        "lbgi": float(10 * np.mean(np.minimum(fbg, 0) ** 2)),
        "hbgi": float(10 * np.mean(np.maximum(fbg, 0) ** 2)),
        "gri": min(gri, 100.0),  # Klonoff 2023, capped at 100 as iglu does
        "j_index": 0.001 * (mean + sd) ** 2,
    }


def subject_metrics(minutes: np.ndarray, gl: np.ndarray) -> dict[str, float]:
    active, days = active_percent(minutes)
    return {**summary(gl), "mage": mage(minutes, gl), "conga": conga(minutes, gl), "modd": modd(minutes, gl),
            "active_percent": active, "days": round(days, 1), "readings": len(gl)}
