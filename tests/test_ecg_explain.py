"""Attributions split by P / QRS / T wave (medui.signals.ecg.explain), on toy results with known bounds."""

import numpy as np
import pytest

from medui.signals.ecg.explain import band, caption, occlusion_band, sentence, wave_segments, wave_summary

# Two beats with known bounds: P 10..20, QRS 20..30, T 30..50; P 110..120, QRS 120..130, T 130..150.
BEATS = [
    {"r_peak": 25, "start": 10, "end": 50, "p_onset": 10, "qrs_onset": 20, "qrs_offset": 30, "t_offset": 50},
    {"r_peak": 125, "start": 110, "end": 150, "p_onset": 110, "qrs_onset": 120, "qrs_offset": 130, "t_offset": 150},
]


def _map(values: dict[tuple[int, int], float], n: int = 200, leads: int = 2) -> list[list[float]]:
    out = np.zeros((leads, n))
    for (lo, hi), v in values.items():
        out[:, lo:hi] = v / leads  # spread over leads, so the lead sum is v per sample
    return out.tolist()


def test_evidence_concentrated_in_qrs_gives_qrs_the_largest_share():
    per_sample = _map({(20, 30): 1.0, (120, 130): -1.0, (10, 20): 0.2, (40, 45): 0.1, (60, 70): 0.05})
    summary = wave_summary({"method": "integrated_gradients", "per_sample": per_sample,
                            "per_lead": {"I": 0.5, "II": 0.5}}, BEATS)
    waves = summary["waves"]
    total = 20 * 1.0 + 10 * 0.2 + 5 * 0.1 + 10 * 0.05  # |attribution|: the negative QRS counts as evidence too
    assert waves["QRS"] == pytest.approx(20 / total)
    assert waves["P"] == pytest.approx(2 / total)
    assert waves["T"] == pytest.approx(0.5 / total)
    assert waves["other"] == pytest.approx(0.5 / total)
    assert max(waves, key=waves.get) == "QRS" and sum(waves.values()) == pytest.approx(1.0)
    assert [b["beat"] for b in summary["beats"]] == [1, 2]
    assert summary["beats"][1]["QRS"] == pytest.approx(10 / total)
    assert summary["leads"] == {"I": 0.5, "II": 0.5} and summary["segments"] == 6
    assert summary["sentence"].startswith(f"The model's evidence sits mostly in the QRS complexes ({100 * 20 / total:.0f} %)"
                                          f" and the P-wave regions ({100 * 2 / total:.0f} %)")


def test_beats_with_missing_bounds_are_skipped():
    beats = [dict(BEATS[0], p_onset=None, t_offset=None), dict(BEATS[1], qrs_onset=None)]
    segments = wave_segments(beats)
    # beat 1: only its QRS (P and T lack a bound); beat 2: P and QRS need qrs_onset, only T remains
    assert segments == [("QRS", 20, 30, 0), ("T", 130, 150, 1)]
    summary = wave_summary({"per_sample": _map({(10, 20): 1.0, (20, 30): 1.0})}, beats)
    assert summary["waves"]["P"] == 0 and summary["waves"]["QRS"] == pytest.approx(0.5)
    assert summary["waves"]["other"] == pytest.approx(0.5)  # the P region of beat 1 is not delineated


def test_overlapping_and_reversed_bounds_count_each_sample_once():
    beats = [{"p_onset": 10, "qrs_onset": 20, "qrs_offset": 30, "t_offset": 60},
             {"p_onset": 50, "qrs_onset": 45, "qrs_offset": 70, "t_offset": 90}]  # P reversed, T of beat 1 overlaps
    assert wave_segments(beats) == [("P", 10, 20, 0), ("QRS", 20, 30, 0), ("T", 30, 60, 0), ("QRS", 60, 70, 1),
                                    ("T", 70, 90, 1)]
    summary = wave_summary({"per_sample": [[1.0] * 100]}, beats)
    assert sum(summary["waves"].values()) == pytest.approx(1.0) and summary["waves"]["other"] == pytest.approx(0.2)


def test_no_map_no_segments_and_zero_map_say_so():
    assert wave_summary({}, BEATS)["sentence"] == "There is no attribution map for this recording."
    assert "cannot be split by wave" in wave_summary({"per_sample": [[1.0] * 10]}, [])["sentence"]
    assert "zero everywhere" in wave_summary({"per_sample": [[0.0] * 200]}, BEATS)["sentence"]
    assert sentence({"P": 0.0, "QRS": 1.0, "T": 0.0, "other": 0.0}) == \
        "The model's evidence sits mostly in the QRS complexes (100 %)."


def test_band_sums_leads_and_caption_states_method_window_and_baseline():
    assert band({}) is None
    assert band({"per_sample": [[1.0, 2.0], [3.0, -1.0]]}).tolist() == [4.0, 1.0]
    assert caption({"method": "integrated_gradients", "baseline": "a blur"}).startswith(
        "Colour band: integrated_gradients for the predicted rhythm against a blur")
    text = caption({"method": "occlusion", "baseline": "a blur", "window_s": 0.25, "stride_s": 0.25})
    assert text.startswith("Colour band: occlusion") and "0.25 s window" in text and "a blur" in text


def test_occlusion_band_passes_the_record_and_window_to_rhythm_occlusion(monkeypatch):
    seen = {}

    def fake(signals, fs, lead_names, *, window_s=0.25, stride_s=None):
        seen.update(shape=signals.shape, fs=fs, leads=lead_names, window_s=window_s)
        return {"attributions": {"method": "occlusion", "per_sample": [[0.0] * signals.shape[1]]}}

    monkeypatch.setattr("medui.signals.ecg.rhythm.occlusion", fake)
    record = type("R", (), {"signals": np.zeros((1, 50)), "fs": 250.0, "lead_names": ["II"]})()
    out = occlusion_band(record, {}, window_s=0.5)
    assert out["method"] == "occlusion" and seen == {"shape": (1, 50), "fs": 250.0, "leads": ["II"], "window_s": 0.5}
