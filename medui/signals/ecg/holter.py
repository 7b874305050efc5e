"""Holter-length ECGs: beats found chunk by chunk, hourly heart rate, rhythm burden per model window, pauses.

A recording longer than LONG_RECORD_S gets this summary instead of the per-beat analysis (delineation and
attributions of a whole day would neither fit on a screen nor in memory); the page then analyses any strip of
it in full. Work is done one CHUNK_S chunk of the rhythm lead at a time (`analysis.chunk_peaks`), so memory
beyond the recording itself is bounded by a chunk, and `progress(fraction)` is called after every chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from medui.signals.ecg.analysis import _num, choose_lead, chunk_peaks, is_flat, quality, rr_stats
from medui.signals.ecg.formats import EcgRecord

LONG_RECORD_S = 600.0  # above 10 minutes the per-beat analysis gives way to this summary
CHUNK_S = 300.0
PAUSE_S = 2.0  # an RR interval over 2 s is a pause (the usual Holter reporting threshold)
TACHY_BPM, BRADY_BPM = 100.0, 50.0  # per-minute heart rate outside these is counted as tachy-/bradycardic minutes
AF_LABEL = "atrial fibrillation"
QUALITY_SAMPLE_S = 20.0  # signal quality is scored on this much of each chunk (see analyse_holter)


def is_long(record: EcgRecord) -> bool:
    return record.duration_s > LONG_RECORD_S


def _strip(record: EcgRecord, start: int, stop: int) -> EcgRecord:
    return EcgRecord(record.signals[:, start:stop], record.fs, list(record.lead_names), record.units_note,
                     record.source)


def strip(record: EcgRecord, start_s: float, seconds: float) -> EcgRecord:
    """A stretch of the recording as a record of its own, for the full per-beat analysis."""
    start = int(max(0.0, min(start_s, record.duration_s - seconds)) * record.fs)
    return _strip(record, start, start + int(seconds * record.fs))


def _per_minute_rate(peaks: np.ndarray, fs: float, minutes: int) -> list[float | None]:
    """Mean heart rate of each minute (from the RR intervals ending in it); None for a minute without two beats."""
    rr_s = np.diff(peaks) / fs
    minute = (peaks[1:] / fs // 60).astype(int)
    count = np.bincount(minute, minlength=minutes)
    total = np.bincount(minute, weights=rr_s, minlength=minutes)
    return [_num(60.0 * c / t, 1) if c else None for c, t in zip(count[:minutes], total[:minutes])]


def _hours(peaks: np.ndarray, fs: float, per_minute: list[float | None], duration_s: float) -> list[dict[str, Any]]:
    rows = []
    for hour in range(int(np.ceil(duration_s / 3600))):
        lo, hi = hour * 3600 * fs, (hour + 1) * 3600 * fs
        inside = peaks[(peaks >= lo) & (peaks < hi)]
        rates = [r for r in per_minute[hour * 60:(hour + 1) * 60] if r is not None]
        rr = np.diff(inside) / fs
        rows.append({"hour": hour, "beats": int(len(inside)),
                     "hr_mean": _num(60.0 / rr.mean(), 1) if len(rr) else None,
                     "hr_min": min(rates) if rates else None, "hr_max": max(rates) if rates else None})
    return rows


def _burden(windows: list[tuple[float, np.ndarray]], labels: list[str], window_s: float) -> dict[str, Any]:
    """Share of model windows per top class, the mean probabilities, and the episodes: runs of consecutive
    windows with the same top class (start, end in seconds), so a paroxysm can be found and shown."""
    probs = np.stack([p for _, p in windows])
    top = probs.argmax(-1)
    episodes: list[dict[str, Any]] = []
    for (start, _), t in zip(windows, top):
        label = labels[t]
        if episodes and episodes[-1]["label"] == label and start - episodes[-1]["end_s"] <= window_s / 2:
            episodes[-1]["end_s"] = _num(start + window_s, 1)
        else:
            episodes.append({"label": label, "start_s": _num(start, 1), "end_s": _num(start + window_s, 1)})
    af_runs = [e["end_s"] - e["start_s"] for e in episodes if e["label"] == AF_LABEL]
    mean = probs.mean(0)
    return {"windows": len(windows), "window_s": window_s,
            "burden": {label: _num(float(np.mean(top == i)), 4) for i, label in enumerate(labels)},
            "rhythm": [{"label": labels[i], "probability": float(mean[i])} for i in np.argsort(-mean)],
            "episodes": episodes, "af_longest_s": _num(max(af_runs), 1) if af_runs else 0.0}


def analyse_holter(record: EcgRecord, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """The CLI's ECG keys for a long recording (rhythm = mean window probabilities) plus a "holter" summary."""
    from medui.signals.ecg.rhythm import RegistryError, window_probabilities

    fs = record.fs
    step = int(CHUNK_S * fs)
    index, why = choose_lead(_strip(record, 0, step))  # the first chunk decides: quality scoring a day is wasteful
    lead = record.lead_names[index]
    signal = record.signals[index]
    warn = list(record.notes) + [
        f"Holter-length recording ({record.duration_s / 3600:.1f} h): beats found in {CHUNK_S / 60:g}-minute chunks "
        f"on lead {lead}; per-beat delineation and attributions are given for one strip at a time."]
    windows: list[tuple[float, np.ndarray]] = []
    scores: list[dict[str, Any]] = []
    model: dict[str, Any] | None = None
    rhythm_error: str | None = None
    labels: list[str] = []
    window_s = 0.0
    chunk_start = 0

    def chunks() -> Iterator[np.ndarray]:
        nonlocal model, rhythm_error, labels, window_s, chunk_start
        for start in range(0, len(signal), step):
            chunk_start = start
            chunk = signal[start:start + step]
            if rhythm_error is None and not is_flat(chunk) and len(chunk) >= fs:
                try:
                    out = window_probabilities(chunk, fs)
                    model, labels, window_s = out["model"], out["labels"], out["window_s"]
                    windows.extend((start / fs + s, p) for s, p in zip(out["starts_s"], out["probabilities"]))
                except (RegistryError, ValueError) as exc:
                    rhythm_error = str(exc).splitlines()[0] if str(exc) else "the model refused the record"
            yield chunk
            if progress is not None:
                progress(min(1.0, (start + len(chunk)) / len(signal)))

    def score(cleaned: np.ndarray, peaks: np.ndarray) -> None:
        # NeuroKit's averageQRS costs ~1 s per minute of signal (pandas epochs), so a day would take half an
        # hour: each chunk is scored on its middle QUALITY_SAMPLE_S, which still catches a detached electrode.
        middle, half = len(cleaned) // 2, int(QUALITY_SAMPLE_S * fs / 2)
        lo, hi = max(0, middle - half), middle + half
        cleaned, peaks = cleaned[lo:hi], peaks[(peaks >= lo) & (peaks < hi)] - lo
        if len(peaks) >= 3:
            scores.append({"start_s": _num(chunk_start / fs), "end_s": _num(min(chunk_start + step, len(signal)) / fs),
                           "score": quality(cleaned, peaks, fs)["mean"]})

    parts = list(chunk_peaks(chunks(), fs, on_chunk=score))
    peaks = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    if len(peaks) < 2:
        raise ValueError(f"No heartbeats found on lead {lead}: fewer than two R-peaks in the whole recording.")
    rr = rr_stats(peaks, fs, record.duration_s, warn)
    rr_s = np.diff(peaks) / fs
    long_rr = np.flatnonzero(rr_s > PAUSE_S)
    minutes = int(np.ceil(record.duration_s / 60))
    per_minute = _per_minute_rate(peaks, fs, minutes)
    rates = [r for r in per_minute if r is not None]
    summary: dict[str, Any] = {
        "chunk_s": CHUNK_S, "hours": _hours(peaks, fs, per_minute, record.duration_s), "hr_per_minute": per_minute,
        "pauses": {"threshold_s": PAUSE_S, "count": int(len(long_rr)),
                   "longest_s": _num(rr_s[long_rr].max(), 2) if len(long_rr) else None,
                   "at_s": [_num(peaks[i] / fs, 1) for i in long_rr[np.argsort(-rr_s[long_rr])][:10]]},
        "minutes_tachycardic": sum(r > TACHY_BPM for r in rates),
        "minutes_bradycardic": sum(r < BRADY_BPM for r in rates),
    }
    rhythm: list[dict[str, Any]] = []
    if windows:
        burden = _burden(windows, labels, window_s)
        rhythm = burden.pop("rhythm")
        summary["rhythm"] = burden
        warn.append(f"Rhythm probabilities are the mean over {burden['windows']} model windows; the burden says how "
                    "much of the recording each rhythm took.")
    else:
        warn.append(f"rhythm not classified: {rhythm_error or 'no usable window'}")
    mean_quality = [s["score"] for s in scores if s["score"] is not None]
    heart_rate = 60000.0 / rr["mean"] if rr["mean"] else None
    return {
        "source": record.source, "sampling_rate": fs, "duration_s": _num(record.duration_s, 3),
        "leads": list(record.lead_names), "analysed_lead": lead, "lead_choice": why, "units": record.units_note,
        "heart_rate_bpm": _num(heart_rate, 1), "r_peaks": [int(p) for p in peaks],
        "rr_ms": {k: rr[k] for k in ("mean", "sdnn", "rmssd")}, "pnn50": rr["pnn50"], "detector_agreement": None,
        "quality": {"method": f"averageQRS on the middle {QUALITY_SAMPLE_S:g} s of each chunk",
                    "mean": _num(np.mean(mean_quality), 3) if mean_quality else None,
                    "segments": scores},
        "rhythm": rhythm, "model": model, "attributions": {}, "warnings": warn, "beats": [], "cleaned": None,
        "holter": summary,
    }

