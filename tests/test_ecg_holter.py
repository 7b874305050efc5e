"""Holter-length ECGs: chunked summary, rhythm burden and episodes, pauses, progress; CLI and page."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medui.signals.ecg import EcgRecord, analyse, read_ecg
from medui.signals.ecg.holter import CHUNK_S, LONG_RECORD_S, strip
from medui.signals.ecg.synth import long_recording

FS = 250
PLAN = [("sinus rhythm", 420), ("atrial fibrillation", 240)]  # 11 minutes: just over the Holter threshold
PAUSE_AT_S, PAUSE_S = 120.0, 3.0


@pytest.fixture(scope="module")
def holter_signal() -> np.ndarray:
    """Sinus rhythm then a 4-minute AF run, with a 3 s pause (flat baseline) at 2 minutes."""
    signal = long_recording(PLAN, seed=3, fs=FS)
    start = int(PAUSE_AT_S * FS)
    signal[start:start + int(PAUSE_S * FS)] = np.median(signal[start - FS:start])
    return signal


@pytest.fixture(scope="module")
def holter_result(holter_signal):
    progress: list[float] = []
    result = analyse(EcgRecord(holter_signal[None], FS, ["II"], "mV", "csv"), progress=progress.append)
    return result, progress


def test_long_recordings_get_the_chunked_summary_with_progress(holter_result, holter_signal):
    result, progress = holter_result
    assert len(holter_signal) / FS > LONG_RECORD_S and "holter" in result
    chunks = int(np.ceil(len(holter_signal) / FS / CHUNK_S))
    assert len(progress) == chunks and progress == sorted(progress) and progress[-1] == 1.0
    summary = result["holter"]
    assert [h["hour"] for h in summary["hours"]] == [0]
    assert summary["hours"][0]["beats"] == len(result["r_peaks"])
    assert len(summary["hr_per_minute"]) == 11
    assert result["beats"] == [] and result["detector_agreement"] is None
    assert any("Holter-length" in w for w in result["warnings"])
    # The CLI's keys are all there, with the whole recording's values.
    for key in ("source", "sampling_rate", "duration_s", "leads", "heart_rate_bpm", "r_peaks", "rr_ms", "quality",
                "rhythm", "model", "warnings"):
        assert key in result
    assert result["duration_s"] == pytest.approx(660) and 40 < result["heart_rate_bpm"] < 160


def test_the_pause_is_found_where_it_was_put(holter_result):
    pauses = holter_result[0]["holter"]["pauses"]
    assert pauses["count"] >= 1 and pauses["longest_s"] >= PAUSE_S * 0.9
    assert abs(pauses["at_s"][0] - PAUSE_AT_S) < PAUSE_S + 2


def test_rhythm_burden_and_episodes_locate_the_af_run(holter_result):
    rhythm = holter_result[0]["holter"]["rhythm"]
    af_share = 240 / 660
    assert rhythm["burden"]["atrial fibrillation"] == pytest.approx(af_share, abs=0.08)
    assert sum(rhythm["burden"].values()) == pytest.approx(1.0, abs=1e-3)
    af = [e for e in rhythm["episodes"] if e["label"] == "atrial fibrillation"]
    assert af and min(e["start_s"] for e in af) == pytest.approx(420, abs=30)  # the paroxysm's onset
    assert all(e["start_s"] >= 390 for e in af)  # and no AF called in the sinus part
    durations = [e["end_s"] - e["start_s"] for e in af]
    assert sum(durations) == pytest.approx(rhythm["burden"]["atrial fibrillation"] * 660, abs=rhythm["window_s"])
    assert rhythm["af_longest_s"] == max(durations) >= 60
    assert rhythm["episodes"][0]["start_s"] == 0 and rhythm["episodes"][-1]["end_s"] == pytest.approx(660, abs=10)
    top = holter_result[0]["rhythm"]
    assert {r["label"] for r in top} == set(rhythm["burden"])
    assert sum(r["probability"] for r in top) == pytest.approx(1.0, abs=1e-6)


def test_short_recordings_keep_the_per_beat_analysis(holter_signal):
    record = EcgRecord(holter_signal[None, :FS * 30], FS, ["II"], "mV", "csv")
    result = analyse(record)
    assert "holter" not in result and result["beats"]


def test_a_strip_is_a_record_of_its_own(holter_signal):
    record = EcgRecord(holter_signal[None], FS, ["II"], "mV", "csv")
    piece = strip(record, 500, 10)
    assert piece.signals.shape == (1, 10 * FS) and piece.fs == FS
    np.testing.assert_array_equal(piece.signals[0], holter_signal[500 * FS:510 * FS])
    assert strip(record, 10_000, 10).signals.shape == (1, 10 * FS)  # clamped to the end


def test_cli_prints_the_holter_summary(tmp_path, cli, holter_signal):
    import edfio

    path = tmp_path / "holter.edf"
    edfio.Edf([edfio.EdfSignal(holter_signal.astype(float), FS, label="ECG II", physical_dimension="mV",
                               physical_range=(-10.0, 10.0))]).write(path)
    assert read_ecg(path, path.name).duration_s == pytest.approx(660)
    code, out, _ = cli("ecg", str(path), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["holter"]["pauses"]["count"] >= 1 and "cleaned" not in data
    code, out, _ = cli("ecg", str(path))
    assert code == 0 and "hour  0:" in out and "rhythm burden over" in out and "pauses over 2 s" in out


@pytest.mark.slow
def test_page_shows_the_holter_summary_and_a_strip(routed_clinician_page):
    at = routed_clinician_page("pages/ecg.py", timeout=180)
    next(b for b in at.button if b.label.startswith("Load sample: Holter")).click().run()
    assert not at.exception and not at.error
    assert any(s.value == "Holter summary" for s in at.subheader)
    assert any(m.label == "Beats" for m in at.metric)
    slider = next(s for s in at.slider if s.label.startswith("Strip start"))
    assert 1140 <= slider.value <= 1260  # opens on the sample's AF paroxysm at 20 minutes
    assert any(s.value == "Rhythm model" for s in at.subheader)  # the strip's full analysis follows
    assert any("atrial fibrillation" in m.value for m in at.markdown)
