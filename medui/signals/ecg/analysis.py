"""ECG analysis on one lead with NeuroKit2: cleaning, R-peaks, rate, RR/HRV, delineation, quality, detector agreement.

NeuroKit2's detectors are used as they are; this module only chooses the lead, combines the outputs, and turns
every partial failure (delineation, HRV on a short recording) into a warning rather than an error.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from medui.signals.ecg.formats import EcgRecord

HRV_MIN_SECONDS = 60.0  # Task Force 1996: short-term time-domain HRV needs at least ~1 min (5 min recommended)
MATCH_MS = 50.0  # two detectors agree on a beat when their R-peaks are within 50 ms
QUALITY_SEGMENT_S = 10.0
NO_RHYTHM = "no rhythm model is available yet"


def _nk():
    import neurokit2 as nk  # heavy import (~1 s): only when a recording is analysed

    return nk


def _num(value: Any, digits: int = 2) -> float | None:
    """A JSON-safe rounded float: NaN/inf become None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, digits) if math.isfinite(value) else None


def is_flat(signal: np.ndarray) -> bool:
    return float(np.ptp(signal)) < 1e-3  # under 1 µV peak to peak: no cardiac activity recorded


def clean_and_peaks(signal: np.ndarray, fs: float, method: str = "neurokit") -> tuple[np.ndarray, np.ndarray]:
    """The cleaned lead and its R-peak sample indices by one of NeuroKit2's detectors.

    Each detector gets the cleaning its authors paired with it where NeuroKit2 has one, so that a second detector
    is an independent check on the first rather than a re-run on the same filtered signal.
    """
    nk = _nk()
    clean_method = method if method in ("pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012") else "neurokit"
    cleaned = np.asarray(nk.ecg_clean(signal, sampling_rate=fs, method=clean_method), dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NeuroKit warns on short or odd input; the caller reports what matters
        _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, method=method)
    return cleaned, np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def _lead_quality(signal: np.ndarray, fs: float) -> float:
    if is_flat(signal):
        return -1.0
    try:
        cleaned, peaks = clean_and_peaks(signal, fs)
        if len(peaks) < 3:
            return 0.0
        return float(np.nanmean(_nk().ecg_quality(cleaned, rpeaks=peaks, sampling_rate=fs)))
    except Exception:  # noqa: BLE001 -- a lead NeuroKit cannot process is simply the worst candidate
        return 0.0


def choose_lead(record: EcgRecord) -> tuple[int, str]:
    """Lead II when present (the standard rhythm lead), else the lead with the best averageQRS quality."""
    upper = [n.strip().upper() for n in record.lead_names]
    for wanted in ("II", "LEAD II", "MLII", "ECG II"):
        if wanted in upper:
            return upper.index(wanted), "lead II, the standard rhythm lead"
    if len(upper) == 1:
        return 0, "the only lead"
    scores = [_lead_quality(s, record.fs) for s in record.signals]
    best = int(np.argmax(scores))
    return best, f"best signal quality ({scores[best]:.2f}) among {len(scores)} leads"


def detector_agreement(a: np.ndarray, b: np.ndarray, fs: float) -> float | None:
    """Share of beats (of the larger set) found by both detectors within MATCH_MS of each other."""
    if len(a) == 0 and len(b) == 0:
        return None
    if len(a) == 0 or len(b) == 0:
        return 0.0
    tolerance = MATCH_MS / 1000.0 * fs
    index = np.clip(np.searchsorted(b, a), 1, len(b) - 1) if len(b) > 1 else np.zeros(len(a), dtype=int)
    nearest = np.minimum(np.abs(b[index] - a), np.abs(b[np.maximum(index - 1, 0)] - a))
    return float(np.sum(nearest <= tolerance)) / max(len(a), len(b))


def rr_stats(peaks: np.ndarray, fs: float, duration_s: float, warn: list[str]) -> dict[str, float | None]:
    """RR mean always; SDNN, RMSSD and pNN50 (NeuroKit2 hrv_time) only on recordings of HRV_MIN_SECONDS or more."""
    rr = np.diff(peaks) / fs * 1000.0
    stats: dict[str, float | None] = {"mean": _num(np.mean(rr)) if len(rr) else None, "sdnn": None, "rmssd": None,
                                      "pnn50": None}
    if duration_s < HRV_MIN_SECONDS:
        warn.append(f"HRV not reported: the recording is {duration_s:.0f} s, under the {HRV_MIN_SECONDS:.0f} s "
                    "needed for time-domain HRV (RR mean is still given).")
    elif len(peaks) < 10:
        warn.append("HRV not reported: fewer than 10 beats were detected.")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hrv = _nk().hrv_time(peaks, sampling_rate=fs)
        stats.update(sdnn=_num(hrv["HRV_SDNN"].iloc[0]), rmssd=_num(hrv["HRV_RMSSD"].iloc[0]),
                     pnn50=_num(hrv["HRV_pNN50"].iloc[0]))
    return stats


def quality(cleaned: np.ndarray, peaks: np.ndarray, fs: float) -> dict[str, Any]:
    """averageQRS quality (0-1, similarity of each beat to the average beat) overall and per 10 s segment."""
    per_sample = np.asarray(_nk().ecg_quality(cleaned, rpeaks=peaks, sampling_rate=fs), dtype=float)
    step = int(QUALITY_SEGMENT_S * fs)
    segments = [{"start_s": _num(i / fs), "end_s": _num(min(i + step, len(per_sample)) / fs),
                 "score": _num(np.nanmean(per_sample[i:i + step]), 3)} for i in range(0, len(per_sample), step)]
    return {"method": "averageQRS", "mean": _num(np.nanmean(per_sample), 3), "segments": segments}


def delineate(cleaned: np.ndarray, peaks: np.ndarray, fs: float, warn: list[str]) -> list[dict[str, int | None]]:
    """One entry per beat: P onset, QRS onset/offset, T offset (dwt), and start/end boundaries for display.

    Where a wave is not found the boundary falls back to halfway to the neighbouring R-peak, so every beat has a band.
    """
    waves: dict[str, Any] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, waves = _nk().ecg_delineate(cleaned, rpeaks=peaks, sampling_rate=fs, method="dwt")
    except Exception as exc:  # noqa: BLE001 -- DWT delineation fails on short or noisy input; the rest still holds
        warn.append(f"P/QRS/T delineation failed ({type(exc).__name__}); beat boundaries are halfway between R-peaks.")

    def wave(key: str, i: int) -> int | None:
        values = waves.get(key)
        if values is None or i >= len(values):
            return None
        value = values[i]
        return int(value) if value is not None and not (isinstance(value, float) and math.isnan(value)) else None

    beats = []
    for i, r in enumerate(peaks):
        low = int((peaks[i - 1] + r) // 2) if i else 0
        high = int((r + peaks[i + 1]) // 2) if i + 1 < len(peaks) else len(cleaned) - 1
        p_on, qrs_on, qrs_off, t_off = (wave(k, i) for k in ("ECG_P_Onsets", "ECG_R_Onsets", "ECG_R_Offsets",
                                                             "ECG_T_Offsets"))
        start = p_on if p_on is not None and low <= p_on < r else qrs_on if qrs_on is not None and low <= qrs_on < r else low
        end = t_off if t_off is not None and r < t_off <= high else high
        beats.append({"r_peak": int(r), "start": int(start), "end": int(end), "p_onset": p_on, "qrs_onset": qrs_on,
                      "qrs_offset": qrs_off, "t_offset": t_off})
    if waves and sum(b["t_offset"] is None for b in beats) > len(beats) / 2:
        warn.append("T-wave ends were not found for most beats; their boundaries are halfway between R-peaks.")
    return beats


def rhythm(record: EcgRecord, warn: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]:
    """The registered rhythm model's output, or nothing (with a warning) while no model is available."""
    from medui.registry import RegistryError

    try:
        from medui.signals.ecg.rhythm import classify

        out = classify(record.signals, record.fs, list(record.lead_names))
    except (ImportError, RegistryError):
        warn.append(NO_RHYTHM)
        return [], None, {}
    except ValueError as exc:  # the model refuses this record (too short, wrong rate): the rest of the analysis holds
        warn.append(f"rhythm not classified: {str(exc).splitlines()[0] if str(exc) else 'the model refused the record'}")
        return [], None, {}
    warn.extend(out.get("warnings", []))
    return list(out.get("rhythm", [])), out.get("model"), dict(out.get("attributions", {}))


def analyse_record(record: EcgRecord) -> dict[str, Any]:
    """The full analysis of a record: the CLI's JSON plus `beats` and `cleaned` (the analysed lead) for the page."""
    nk = _nk()
    warn: list[str] = list(record.notes)
    index, why = choose_lead(record)
    lead = record.lead_names[index]
    signal = record.signals[index]
    if is_flat(signal):
        raise ValueError(f"No heartbeats found: lead {lead} is a flat line (no signal was recorded).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fixed, inverted = nk.ecg_invert(signal, sampling_rate=record.fs)
    except Exception:  # noqa: BLE001 -- the inversion check is a refinement; without it the raw lead is used
        fixed, inverted = signal, False
    if inverted:
        warn.append(f"Lead {lead} looked inverted and was flipped before analysis (check electrode placement).")
        signal = np.asarray(fixed, dtype=float)
    try:
        cleaned, peaks = clean_and_peaks(signal, record.fs)
    except Exception as exc:  # noqa: BLE001 -- NeuroKit fails on signals without beats; say so in one line
        raise ValueError(f"No heartbeats found on lead {lead}: the R-peak detector failed ({type(exc).__name__}).") from None
    if len(peaks) < 2:
        raise ValueError(f"No heartbeats found on lead {lead}: fewer than two R-peaks were detected.")
    try:
        _, other = clean_and_peaks(signal, record.fs, method="pantompkins1985")
        agreement = detector_agreement(peaks, other, record.fs)
    except Exception:  # noqa: BLE001
        agreement = None
    if agreement is not None and agreement < 0.9:
        warn.append(f"Two R-peak detectors agree on only {agreement:.0%} of beats: check the peaks by eye.")
    duration = record.duration_s
    rr = rr_stats(peaks, record.fs, duration, warn)
    heart_rate = 60000.0 / rr["mean"] if rr["mean"] else None
    if heart_rate is not None and not 20 <= heart_rate <= 300:
        warn.append(f"Heart rate {heart_rate:.0f} bpm is outside 20-300 bpm: the peaks are probably wrong.")
    labels, model, attributions = rhythm(record, warn)
    qual = quality(cleaned, peaks, record.fs)
    if qual["mean"] is not None and qual["mean"] < 0.5:
        warn.append(f"Signal quality on lead {lead} is low ({qual['mean']:.2f}).")
    beats = delineate(cleaned, peaks, record.fs, warn)
    return {
        "source": record.source, "sampling_rate": record.fs, "duration_s": _num(duration, 3),
        "leads": list(record.lead_names), "analysed_lead": lead, "lead_choice": why, "units": record.units_note,
        "heart_rate_bpm": _num(heart_rate, 1), "r_peaks": [int(p) for p in peaks],
        "rr_ms": {k: rr[k] for k in ("mean", "sdnn", "rmssd")}, "pnn50": rr["pnn50"],
        "detector_agreement": _num(agreement, 3), "quality": qual, "rhythm": labels, "model": model,
        "attributions": attributions, "warnings": warn, "beats": beats, "cleaned": cleaned,
    }


# ---------------------------------------------------------------- long recordings


def chunk_peaks(chunks: Iterable[np.ndarray], fs: float, overlap_s: float = 2.0,
                on_chunk: Callable[[np.ndarray, np.ndarray], None] | None = None) -> Iterator[np.ndarray]:
    """R-peaks (absolute sample indices) of a long single-lead recording given as consecutive chunks.

    Each chunk is processed with `overlap_s` of the previous chunk prepended, and only peaks after the previous
    chunk's last kept peak (plus a refractory 200 ms) are kept, so memory is bounded by one chunk, not the recording.
    `on_chunk(cleaned, peaks)` sees each processed stretch and its peaks (indices into it), e.g. for its quality.
    """
    overlap = int(overlap_s * fs)
    refractory = int(0.2 * fs)
    tail = np.empty(0)
    offset = 0  # absolute index of the first sample of the current chunk
    last = -refractory - 1
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=float)
        data = np.concatenate([tail, chunk])
        start = offset - len(tail)
        if not is_flat(data):
            cleaned, peaks = clean_and_peaks(data, fs)
            if on_chunk is not None:
                on_chunk(cleaned, peaks)
            # Peaks too close to the end may be cut off: leave them for the next chunk, which re-sees this tail.
            peaks = peaks[peaks < len(data) - overlap // 2] + start
            peaks = peaks[peaks > last + refractory]
            if len(peaks):
                last = int(peaks[-1])
                yield peaks
        tail = data[-overlap:]
        offset += len(chunk)


def analyse_long(chunks: Iterable[np.ndarray], fs: float) -> dict[str, Any]:
    """Heart rate and time-domain HRV of a long single-lead recording processed in chunks (see chunk_peaks)."""
    parts, samples = [], 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal samples
        for chunk in chunks:
            samples += len(chunk)
            yield chunk

    for peaks in chunk_peaks(counted(), fs):
        parts.append(peaks.astype(np.int64))
    peaks = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    warn: list[str] = []
    rr = rr_stats(peaks, fs, samples / fs, warn)
    return {"duration_s": samples / fs, "beats": len(peaks), "heart_rate_bpm": _num(60000.0 / rr["mean"], 1)
            if rr["mean"] else None, "rr_ms": rr, "warnings": warn}
