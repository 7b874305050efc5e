"""ECG reading (CSV, WFDB, EDF, DICOM), NeuroKit2 analysis and the `medui ecg` command."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from medui.signals.ecg import NO_RHYTHM, analyse, analyse_long, read_ecg
from medui.uploads import UploadRejected

nk = pytest.importorskip("neurokit2")


@pytest.fixture(scope="module")
def dicom_path() -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("waveform_ecg.dcm", download=False))


@pytest.fixture(scope="module")
def dicom_result(dicom_path):
    return analyse(read_ecg(dicom_path, dicom_path.name))


def synthetic(heart_rate: int, duration: int = 30, fs: int = 250, seed: int = 7) -> np.ndarray:
    return nk.ecg_simulate(duration=duration, sampling_rate=fs, heart_rate=heart_rate, random_state=seed)


def csv_bytes(columns: dict[str, np.ndarray], fmt: str = "%.5f") -> bytes:
    header = ",".join(columns)
    rows = np.column_stack(list(columns.values()))
    lines = [",".join(fmt % v for v in row) for row in rows]
    return (header + "\n" + "\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------- real ECG


def test_dicom_12_lead_reads_in_millivolts(dicom_path):
    record = read_ecg(dicom_path, dicom_path.name)
    assert record.signals.shape == (12, 10000) and record.fs == 1000.0 and record.source == "dicom"
    assert record.lead_names[:3] == ["I", "II", "III"] and "aVR" in record.lead_names
    assert "µV" in record.units_note and 0.5 < np.abs(record.signals).max() < 5  # mV, not µV


def test_dicom_heart_rate_matches_hand_count(dicom_result):
    # Checked by hand once: lead II's raw maxima (scipy find_peaks, height > half the maximum, 300 ms apart) lie at
    # samples 527, 1527, 2505, 3490, 4485, 5468, 6443, 7444, 8418, 9370 (1 kHz): ten beats in 10 s, RR intervals
    # 952-1001 ms, mean 981.6 ms -> 61.1 bpm.
    assert dicom_result["analysed_lead"] == "II"
    assert len(dicom_result["r_peaks"]) == 10
    assert dicom_result["heart_rate_bpm"] == pytest.approx(61.1, abs=3)
    hand = [527, 1527, 2505, 3490, 4485, 5468, 6443, 7444, 8418, 9370]
    assert np.max(np.abs(np.array(dicom_result["r_peaks"]) - hand)) <= 20  # within 20 ms of the hand-checked maxima


def test_short_recording_withholds_hrv_with_warning(dicom_result):
    assert dicom_result["rr_ms"]["mean"] == pytest.approx(981.6, abs=5)
    assert dicom_result["rr_ms"]["sdnn"] is None and dicom_result["rr_ms"]["rmssd"] is None
    assert any("HRV not reported" in w for w in dicom_result["warnings"])


def test_page_extras_beats_quality_and_rhythm_fallback(dicom_result):
    beats = dicom_result["beats"]
    assert len(beats) == 10 and all(b["start"] < b["r_peak"] < b["end"] for b in beats)
    assert len(dicom_result["cleaned"]) == 10000
    assert 0 <= dicom_result["quality"]["mean"] <= 1 and dicom_result["quality"]["segments"]
    assert 0 <= dicom_result["detector_agreement"] <= 1
    if dicom_result["model"] is None:  # before a rhythm model is registered
        assert dicom_result["rhythm"] == [] and NO_RHYTHM in dicom_result["warnings"]


# ---------------------------------------------------------------- synthetic rates


@pytest.mark.parametrize("rate", [60, 100, 150])
def test_synthetic_heart_rates(rate):
    fs = 250
    signal = synthetic(rate, fs=fs)
    record = read_ecg(csv_bytes({"II": signal}), "sim.csv", fs=fs)
    result = analyse(record)
    assert result["heart_rate_bpm"] == pytest.approx(rate, abs=2)
    assert len(result["r_peaks"]) == pytest.approx(rate / 2, abs=2)  # 30 s


def test_hrv_reported_on_a_minute_and_more():
    result = analyse(read_ecg(csv_bytes({"ECG": synthetic(70, duration=65)}), "sim.csv", fs=250))
    assert result["rr_ms"]["sdnn"] is not None and result["rr_ms"]["rmssd"] is not None
    assert not any("HRV not reported" in w for w in result["warnings"])


def test_long_recording_in_chunks_matches_rate():
    signal = synthetic(80, duration=120, seed=3)
    result = analyse_long((signal[i:i + 250 * 20] for i in range(0, len(signal), 250 * 20)), 250)
    assert result["heart_rate_bpm"] == pytest.approx(80, abs=2) and result["beats"] == pytest.approx(160, abs=3)


# ---------------------------------------------------------------- CSV details


def test_csv_time_column_in_ms_gives_fs():
    signal = synthetic(75, duration=12)
    record = read_ecg(csv_bytes({"time_ms": np.arange(len(signal)) * 4.0, "II": signal}), "t.csv")
    assert record.fs == pytest.approx(250) and record.lead_names == ["II"]
    assert any("ms" in n for n in record.notes)


def test_csv_timestamps_give_fs():
    signal = synthetic(75, duration=5)
    stamps = np.datetime64("2024-01-01T00:00:00") + np.arange(len(signal)) * np.timedelta64(2, "ms")
    text = "timestamp,II\n" + "\n".join(f"{t},{v:.4f}" for t, v in zip(stamps, signal, strict=True))
    assert read_ecg(text.encode(), "t.csv").fs == pytest.approx(500)


def test_csv_in_microvolts_detected_and_converted():
    signal = synthetic(75, duration=10)
    record = read_ecg(csv_bytes({"II": signal * 1000}, "%.1f"), "uv.csv", fs=250)
    assert "µV" in record.units_note
    np.testing.assert_allclose(record.signals[0], signal, atol=1e-3)
    labelled = read_ecg(csv_bytes({"II (uV)": signal * 1000}, "%.1f"), "uv.csv", fs=250)
    assert labelled.lead_names == ["II"] and np.abs(labelled.signals).max() < 5


def test_csv_without_time_or_fs_is_refused():
    with pytest.raises(ValueError, match="sampling rate is unknown: .*pass --fs"):
        read_ecg(csv_bytes({"II": synthetic(60, duration=5)}), "x.csv")


def test_fs_out_of_range_and_contradicting_time_column_are_refused():
    with pytest.raises(ValueError, match="outside 50-10000 Hz"):
        read_ecg(csv_bytes({"II": synthetic(60, duration=5)}), "x.csv", fs=20)
    signal = synthetic(60, duration=5)
    with pytest.raises(ValueError, match="contradicts the time column"):
        read_ecg(csv_bytes({"time_ms": np.arange(len(signal)) * 4.0, "II": signal}), "x.csv", fs=500)


# ---------------------------------------------------------------- WFDB, EDF


def test_wfdb_round_trip(tmp_path):
    import wfdb

    signal = synthetic(90, duration=15, fs=360)
    wfdb.wrsamp("rec1", fs=360, units=["mV", "mV"], sig_name=["MLII", "V5"], p_signal=np.column_stack([signal, signal * 0.5]),
                fmt=["212", "212"], write_dir=str(tmp_path))
    for given in (tmp_path / "rec1.hea", tmp_path / "rec1"):
        record = read_ecg(given, given.name)
        assert record.source == "wfdb" and record.fs == 360 and record.lead_names == ["MLII", "V5"]
        np.testing.assert_allclose(record.signals[0], signal, atol=0.01)
    uploaded = read_ecg((tmp_path / "rec1.hea").read_bytes(), "rec1.hea", extra={"rec1.dat": (tmp_path / "rec1.dat").read_bytes()})
    assert uploaded.signals.shape == (2, 15 * 360)
    assert analyse(uploaded)["heart_rate_bpm"] == pytest.approx(90, abs=2)
    with pytest.raises(ValueError, match="rec1.dat' is missing"):
        read_ecg((tmp_path / "rec1.hea").read_bytes(), "rec1.hea")


def test_edf_round_trip_in_microvolts(tmp_path):
    import edfio

    signal = synthetic(70, duration=10, fs=256)
    edf = edfio.Edf([edfio.EdfSignal(signal * 1000, 256, label="ECG II", physical_dimension="uV"),
                     edfio.EdfSignal(np.zeros(10 * 8), 8, label="SpO2", physical_dimension="%")])
    edf.write(tmp_path / "r.edf")
    record = read_ecg(tmp_path / "r.edf", "r.edf")
    assert record.source == "edf" and record.fs == 256 and record.lead_names == ["ECG II"]
    np.testing.assert_allclose(record.signals[0], signal, atol=0.05)
    assert analyse(record)["heart_rate_bpm"] == pytest.approx(70, abs=2)


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"II,V1\n0.1,0.2\n", "fewer than two rows"),
    (b"hello there\nthis is not an ecg\n", "not a CSV"),
    (b"name,comment\nann,hello\nbob,world\n", "not a CSV table of ECG samples"),
    (gzip.compress(b"II\n1\n2\n" * 100), "gzip"),
    (b"\x00\x01\x02garbage\xff" * 50, "not an ECG recording"),
])
def test_bad_inputs_are_one_line_refusals(data, message):
    with pytest.raises((ValueError, UploadRejected), match=message) as info:
        read_ecg(data, "renamed.csv", fs=250)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", ["nan", "inf", "", "abc"])
def test_non_finite_values_are_refused_with_the_line(bad):
    values = [f"{v:.3f}" for v in synthetic(60, duration=4)]
    values[100] = bad
    with pytest.raises(ValueError, match="Line 102.*not a finite number"):
        read_ecg(("II\n" + "\n".join(values)).encode(), "x.csv", fs=250)


def test_flat_line_has_a_specific_message():
    record = read_ecg(csv_bytes({"II": np.zeros(2500)}), "flat.csv", fs=250)
    with pytest.raises(ValueError, match="No heartbeats found: lead II is a flat line"):
        analyse(record)


# ---------------------------------------------------------------- CLI


def test_cli_json_keys(cli, dicom_path):
    code, out, err = cli("ecg", str(dicom_path), "--json")
    assert code == 0, err
    data = json.loads(out)
    for key in ("source", "sampling_rate", "duration_s", "leads", "heart_rate_bpm", "r_peaks", "rr_ms", "quality",
                "rhythm", "model", "warnings"):
        assert key in data
    assert set(data["rr_ms"]) == {"mean", "sdnn", "rmssd"} and "cleaned" not in data
    assert "HRV not reported" in err


def test_cli_text_and_one_line_errors(cli, tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(csv_bytes({"II": synthetic(60, duration=5)}))
    code, out, err = cli("ecg", str(path), "--json")
    assert code == 1 and json.loads(out) == {"error": "The sampling rate is unknown: the CSV has no time column, pass --fs."}
    assert err.count("\n") == 1 and "Traceback" not in err
    code, out, err = cli("ecg", str(path), "--fs", "250")
    assert code == 0 and "heart rate" in out
    code, _, err = cli("ecg", str(tmp_path / "missing.csv"))
    assert code == 1 and err.startswith("error: cannot read")
    (tmp_path / "g.csv").write_bytes(gzip.compress(b"abc" * 100))
    code, _, err = cli("ecg", str(tmp_path / "g.csv"))
    assert code == 1 and "gzip" in err and err.count("\n") == 1


def test_a_huge_single_csv_field_is_refused_before_parsing():
    """A 100 MB single field must not be parsed; the upload guard refuses any field over 10 MB (11 MB here)."""
    from medui.signals.ecg import read_ecg
    from medui.uploads import UploadRejected

    data = b"time_ms,II\n0," + b"1" * (11 * 1024 * 1024) + b"\n"
    with pytest.raises(UploadRejected, match="A CSV field is longer than 10 MB"):
        read_ecg(data, "huge.csv")
