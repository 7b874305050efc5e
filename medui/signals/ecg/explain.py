"""Where the rhythm model's evidence sits: attributions split by P / QRS / T wave, by beat and by lead.

No Streamlit here. The page calls:

    summary = wave_summary(attributions, result["beats"])   # shares of total |attribution| per wave and per beat
    summary["sentence"]                                      # "The model's evidence sits mostly in the QRS ..."
    attributions = occlusion_band(record, result)            # the captum Occlusion map, same layout as IG's

Segments come from the beat delineation: P = p_onset..qrs_onset, QRS = qrs_onset..qrs_offset,
T = qrs_offset..t_offset (half-open sample ranges at the input rate). A segment whose bounds are missing or out of
order is skipped; everything not covered by a segment counts as "other". Shares are of the total absolute
attribution summed over all leads, so evidence for and against the predicted class both count as "where it looked".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medui.signals.ecg.rhythm import segment_attribution

WAVES = ("P", "QRS", "T")
OTHER = "other"
OCCLUSION_WINDOW_S = 0.25
METHODS = {"Integrated Gradients": "integrated_gradients", "Occlusion": "occlusion"}
BAND_TITLES = {"integrated_gradients": "IG", "occlusion": "occlusion"}
_WORDS = {"P": "the P-wave regions", "QRS": "the QRS complexes", "T": "the T waves",
          OTHER: "the stretches outside the delineated waves"}
_BOUNDS = {"P": ("p_onset", "qrs_onset"), "QRS": ("qrs_onset", "qrs_offset"), "T": ("qrs_offset", "t_offset")}


def wave_segments(beats: list[dict[str, Any]]) -> list[tuple[str, int, int, int]]:
    """(label, start, end, beat index) for every P, QRS and T segment with both bounds known and start < end.

    Segments are sorted by start and trimmed so they never overlap (a sample is counted once)."""
    found = []
    for index, beat in enumerate(beats):
        for label, (lo_key, hi_key) in _BOUNDS.items():
            lo, hi = beat.get(lo_key), beat.get(hi_key)
            if lo is None or hi is None or int(hi) <= int(lo):
                continue
            found.append((label, int(lo), int(hi), index))
    found.sort(key=lambda s: (s[1], s[2]))
    out, last_end = [], -1
    for label, lo, hi, index in found:
        lo = max(lo, last_end)
        if hi > lo:
            out.append((label, lo, hi, index))
            last_end = hi
    return out


def band(attributions: dict[str, Any]) -> np.ndarray | None:
    """The per-sample map summed over leads (what the colour band draws), or None without one."""
    per_sample = (attributions or {}).get("per_sample")
    if not per_sample:
        return None
    values = np.asarray(per_sample, dtype=float)
    return values if values.ndim == 1 else values.sum(axis=0)


def wave_summary(attributions: dict[str, Any], beats: list[dict[str, Any]]) -> dict[str, Any]:
    """Shares (0..1) of the total |attribution| per wave ("P", "QRS", "T", "other"), per beat and per lead,
    plus a plain-words sentence. Returns {"waves", "beats", "leads", "segments", "sentence", "method"}."""
    method = (attributions or {}).get("method", "attribution")
    per_sample = (attributions or {}).get("per_sample")
    leads = {k: float(v) for k, v in ((attributions or {}).get("per_lead") or {}).items()}
    if not per_sample:
        return {"waves": {}, "beats": [], "leads": leads, "segments": 0, "method": method,
                "sentence": "There is no attribution map for this recording."}
    magnitude = np.abs(np.asarray(per_sample, dtype=float))
    total = float(magnitude.sum())
    segments = wave_segments(beats)
    split = segment_attribution(magnitude, [(label, lo, hi) for label, lo, hi, _ in segments])
    waves = {label: (split["by_label"].get(label, 0.0) / total if total else 0.0) for label in WAVES}
    waves[OTHER] = max(0.0, 1.0 - sum(waves.values())) if total else 0.0
    per_beat: dict[int, dict[str, Any]] = {}
    for (_, _, _, index), part in zip(segments, split["segments"]):
        row = per_beat.setdefault(index, {"beat": index + 1, "r_peak": beats[index].get("r_peak"),
                                          **{label: 0.0 for label in WAVES}})
        row[part["label"]] += part["attribution"] / total if total else 0.0
    rows = [per_beat[i] for i in sorted(per_beat)]
    for row in rows:
        row["total"] = sum(row[label] for label in WAVES)
    return {"waves": waves, "beats": rows, "leads": leads, "segments": len(segments), "method": method,
            "sentence": sentence(waves, len(segments), total)}


def sentence(waves: dict[str, float], segments: int = 1, total: float = 1.0) -> str:
    """"The model's evidence sits mostly in the QRS complexes (54 %) and the P-wave regions (31 %)." """
    if not total:
        return "The attribution map is zero everywhere: the model's evidence cannot be placed in the trace."
    if not segments:
        return "No P, QRS or T boundaries were found, so the model's evidence cannot be split by wave."
    ranked = sorted(waves.items(), key=lambda kv: kv[1], reverse=True)
    first, second = ranked[0], ranked[1]
    text = f"The model's evidence sits mostly in {_WORDS[first[0]]} ({100 * first[1]:.0f} %)"
    if second[1] >= 0.005:
        text += f" and {_WORDS[second[0]]} ({100 * second[1]:.0f} %)"
    return text + "."


def caption(attributions: dict[str, Any]) -> str:
    """What the colour band shows, naming the method, its window (occlusion) and its baseline."""
    method = attributions.get("method", "attribution")
    baseline = attributions.get("baseline", "a stated baseline")
    if method == "occlusion":
        return (f"Colour band: occlusion for the predicted rhythm: each {attributions.get('window_s', 0):.2g} s "
                f"window (stride {attributions.get('stride_s', 0):.2g} s) of each lead replaced by {baseline}; "
                "the band is the drop in the predicted class's logit.")
    return f"Colour band: {method} for the predicted rhythm against {baseline}."


def occlusion_band(record: Any, result: dict[str, Any], window_s: float = OCCLUSION_WINDOW_S) -> dict[str, Any]:
    """captum Occlusion for the analysed record's predicted class, in the layout of result["attributions"]
    (per_sample [leads][samples] at the input rate, per_lead shares, method, baseline, window_s, stride_s)."""
    from medui.signals.ecg.rhythm import occlusion

    out = occlusion(record.signals, record.fs, list(record.lead_names), window_s=window_s)
    return dict(out["attributions"])
