"""CGM readers and metrics: hand-computed golden values, iglu-python agreement, bad inputs, and the CLI."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pandas as pd
import pytest

from medui.signals.cgm import analyse, read_cgm
from medui.signals.cgm.agp import episodes, range_shares
from medui.signals.cgm.metrics import active_percent, conga, mage, modd, summary
from medui.signals.cgm.samples import dexcom_csv, generic_csv, libreview_csv, synthetic_frame
from medui.uploads import UploadRejected


def csv_of(times, values, subject="p1") -> bytes:
    lines = ["id,time,gl"] + [f"{subject},{t:%Y-%m-%d %H:%M:%S},{v}" for t, v in zip(times, values)]
    return ("\n".join(lines) + "\n").encode()


def grid(days: float, step: int = 5, start="2024-01-01 00:00") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=int(days * 1440 / step), freq=f"{step}min")


def minutes(times) -> np.ndarray:
    return pd.DatetimeIndex(times).to_numpy(dtype="datetime64[ns]").astype(np.int64) / 6e10


# --- golden values computed by hand --------------------------------------------------------------------------------

def test_summary_metrics_by_hand():
    gl = np.array([60.0, 100.0, 120.0, 190.0])
    m = summary(gl)
    assert m["mean"] == 117.5  # (60 + 100 + 120 + 190) / 4
    sd = math.sqrt(((60 - 117.5) ** 2 + (100 - 117.5) ** 2 + (120 - 117.5) ** 2 + (190 - 117.5) ** 2) / 3)
    assert m["sd"] == pytest.approx(sd)  # sample SD (n - 1), as R's sd()
    assert m["cv"] == pytest.approx(100 * sd / 117.5)
    assert m["gmi"] == pytest.approx(3.31 + 0.02392 * 117.5)  # Bergenstal 2018
    assert m["ea1c"] == pytest.approx((46.7 + 117.5) / 28.7)  # Nathan 2008 (ADAG)
    # one reading of four in each tail: 60 is <70 but not <54; 190 is >180 but not >250
    assert (m["pct_below_54"], m["pct_below_70"], m["pct_in_70_180"], m["pct_above_180"], m["pct_above_250"]) == (
        0, 25, 50, 25, 0)
    assert m["gri"] == pytest.approx(2.4 * 25 + 0.8 * 25)  # Klonoff 2023: 3.0 VLow + 2.4 Low + 1.6 VHigh + 0.8 High
    assert m["j_index"] == pytest.approx(0.001 * (117.5 + sd) ** 2)  # Wojcicki 1995


def test_range_boundaries_and_gri_cap():
    m = summary(np.array([54.0, 70.0, 180.0, 250.0]))  # iglu: in range is inclusive, below/above are strict
    assert (m["pct_below_54"], m["pct_below_70"], m["pct_in_70_180"], m["pct_above_180"]) == (0, 25, 50, 25)
    assert summary(np.array([40.0, 45.0, 300.0, 350.0]))["gri"] == 100  # 3.0*50 + 1.6*50 = 230, capped at 100
    assert range_shares(m) == [0, 25, 50, 25, 0]


def test_risk_indices_are_zero_at_the_scale_centre():
    # Kovatchev's transform is centred so f(112.5 mg/dL) is ~0: no low or high risk there; 40 mg/dL is all low risk.
    centre = summary(np.full(10, 112.5))
    assert centre["lbgi"] == pytest.approx(0, abs=1e-3) and centre["hbgi"] == pytest.approx(0, abs=1e-3)
    f40 = 1.509 * (math.log(40) ** 1.084 - 5.381)
    low = summary(np.array([40.0, 40.0]))
    assert low["lbgi"] == pytest.approx(10 * f40 ** 2) and low["hbgi"] == 0


def test_modd_and_conga_on_a_repeated_day():
    # Day 2 repeats day 1 plus 10 mg/dL on the 5-minute grid: every 24-h difference is exactly 10.
    times = grid(2)
    day = 120 + 40 * np.sin(np.arange(288) / 288 * 2 * np.pi)
    gl = np.concatenate([day, day + 10])
    assert modd(minutes(times), gl) == pytest.approx(10)  # mean |difference| = 10
    assert conga(minutes(times), gl) == pytest.approx(0, abs=1e-9)  # SD of constant differences = 0


def test_mage_of_a_sinusoid_is_its_peak_to_trough_height():
    # 150 - 50 cos(2 pi t / 8 h), sampled on the 5-minute grid from a nadir: every excursion is 100 mg/dL (> 1 SD).
    times = grid(2)
    t = np.arange(len(times)) * 5
    gl = 150 - 50 * np.cos(2 * np.pi * t / 480)
    assert mage(minutes(times), gl) == pytest.approx(100, abs=0.05)


def test_active_percent_counts_the_missing_hour():
    times = grid(1).delete(slice(100, 112))  # 12 readings (one hour) missing from 288
    active, days = active_percent(minutes(times))
    assert active == pytest.approx(100 * (288 - 12) / 288)  # iglu: (theoretical - missing) / theoretical
    assert days == pytest.approx(1435 / 1440)


# --- agreement with iglu-python -----------------------------------------------------------------------------------

def test_all_metrics_match_iglu_python():
    iglu = pytest.importorskip("iglu_python")
    frame = synthetic_frame(2, days=14, seed=5)
    frame = frame.drop(frame.index[1000:1080])  # a 6.7-hour hole: MAGE splits there, CONGA/MODD stop interpolating
    cgm = read_cgm(generic_csv(frame), "two.csv")
    ours = {s["id"]: s["metrics"] for s in analyse(cgm)["subjects"]}
    df = cgm.frame.copy()
    reference = {
        "mean": iglu.mean_glu(df), "sd": iglu.sd_glu(df), "cv": iglu.cv_glu(df), "gmi": iglu.gmi(df),
        "ea1c": iglu.ea1c(df), "lbgi": iglu.lbgi(df), "hbgi": iglu.hbgi(df), "gri": iglu.gri(df),
        "mage": iglu.mage(df), "conga": iglu.conga(df), "modd": iglu.modd(df), "j_index": iglu.j_index(df),
        "active_percent": iglu.active_percent(df)[["id", "active_percent"]],
        "pct_in_70_180": iglu.in_range_percent(df, [[70, 180]]),
        "pct_below_54": iglu.below_percent(df, [54])[["id", "below_54"]],
        "pct_above_250": iglu.above_percent(df, [250])[["id", "above_250"]],
    }
    for key, table in reference.items():
        for subject, value in table.set_index("id").iloc[:, 0].items():
            assert ours[subject][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (key, subject)


# --- readers ------------------------------------------------------------------------------------------------------

def test_samples_read_in_every_layout():
    generic = analyse(read_cgm(generic_csv(), "g.csv"))
    assert generic["source"] == "generic" and [s["id"] for s in generic["subjects"]] == ["synthetic-A", "synthetic-B"]
    assert all(s["sufficient"] and s["readings"] == 14 * 288 for s in generic["subjects"])
    dexcom = read_cgm(dexcom_csv(), "clarity.csv")
    assert (dexcom.source, dexcom.units, len(dexcom.frame)) == ("dexcom", "mg/dL", 14 * 288)
    libre = read_cgm(libreview_csv(), "libre.csv")
    assert (libre.source, libre.units, len(libre.frame)) == ("libreview", "mmol/L", 14 * 96)
    assert any("scan readings were left out" in n for n in libre.notes)
    assert libre.frame["gl"].between(40, 400).all()  # converted to mg/dL


def test_dexcom_low_high_words_and_mmol_header():
    head = "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Glucose Value (mmol/L)\n"
    body = "1,,FirstName,,\n2,2024-01-01T00:00:00,EGV,,Low\n3,2024-01-01T00:05:00,EGV,,5.5\n4,2024-01-01T00:10:00,EGV,,High\n"
    cgm = read_cgm((head + body).encode(), "d.csv")
    assert cgm.units == "mmol/L" and cgm.frame["gl"].tolist() == [40.0, 99.0, 400.0]  # 2.2 / 5.5 / 22.2 x 18
    assert "2 'Low'/'High' readings" in cgm.notes[0]


def test_r_written_generic_file_with_index_column():
    text = '"","id","time","gl"\n"1","a","2024-01-01 00:00:00",100\n"2","a","2024-01-01 00:05:00",110\n'
    assert read_cgm(text.encode(), "r.csv").frame["gl"].tolist() == [100, 110]


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty."),
    (gzip.compress(csv_of(grid(1), [100] * 288)), "gzip"),
    (b"name,value\nx,1\n", "Not a recognised CGM export"),
    (csv_of(grid(1)[:1], [100]), "only one reading"),
    (csv_of(grid(1)[[0, 0, 1]], [100, 120, 130]), "sharing a timestamp with different values"),
    (csv_of(grid(1)[:3], [100, "inf", 120]), "Line 3: glucose value 'inf' is not a finite number"),
    (csv_of(grid(1)[:3], [100, "abc", 120]), "Line 3: glucose value 'abc'"),
    (csv_of(grid(1)[:4], [5.5, 150, 6.1, 170]), "Cannot tell the units"),
    (b"id,time,gl\na,yesterday,100\n", "Line 2: time 'yesterday'"),
    (b"id,time,gl\na,2024-01-01 00:00,\n", "no glucose readings"),
    ((b"Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Glucose Value (mg/dL)\n1,2024-01-01T00:00:00,EGV,5.6\n"
     b"2,2024-01-01T00:05:00,EGV,6.1\n"), "labelled mg/dL but look like mmol/L"),
])
def test_bad_inputs_get_a_specific_message(data, message):
    with pytest.raises((ValueError, UploadRejected), match=message.replace("(", r"\(").replace(")", r"\)")):
        read_cgm(data, "bad.csv")


def test_repairs_are_reported():
    times, values = grid(1), list(100 + np.arange(288) % 50)
    shuffled = csv_of(times[::-1], values[::-1]).decode().splitlines()
    text = "\n".join(shuffled + shuffled[1:3] + ["p1,2024-01-01 00:07:00,"]) + "\n"  # reversed, repeats, a blank
    cgm = read_cgm(text.encode(), "x.csv")
    assert cgm.frame["time"].is_monotonic_increasing and len(cgm.frame) == 288
    assert {n.split(" ")[0] for n in cgm.notes} >= {"1", "2", "The"}  # blank skipped, repeats dropped, sorted


def test_gap_of_days_is_noted_and_lowers_active_time():
    times = grid(14).delete(slice(288 * 3, 288 * 8))  # five days without the sensor
    cgm = read_cgm(csv_of(times, list(100 + np.arange(len(times)) % 60)), "gap.csv")
    assert any("gap of 5.0 days" in n for n in cgm.notes)
    subject = analyse(cgm)["subjects"][0]
    assert subject["metrics"]["active_percent"] == pytest.approx(100 * 9 / 14, abs=0.1)  # under the 70% rule
    assert subject["sufficient"] is False


def test_mmol_values_and_explicit_units():
    values = [round(5 + (i % 40) / 10, 1) for i in range(288)]
    assert read_cgm(csv_of(grid(1), values), "m.csv").units == "mmol/L"
    with pytest.raises(ValueError, match="labelled mg/dL"):
        read_cgm(csv_of(grid(1), values), "m.csv", units="mgdl")
    with pytest.raises(ValueError, match="Unknown units"):
        read_cgm(csv_of(grid(1), values), "m.csv", units="furlongs")


def test_episodes_need_fifteen_minutes():
    times = grid(0.25)  # 72 readings
    gl = np.full(72, 120.0)
    gl[10:13] = 60  # 3 readings x 5 min = 15 min: an episode
    gl[30:32] = 50  # 10 min: too short
    found = episodes(pd.DataFrame({"time": times, "gl": gl}))
    assert found[["episode", "minutes", "extreme_mgdl"]].values.tolist() == [["Level 1 hypoglycaemia", 15, 60.0]]


# --- CLI ----------------------------------------------------------------------------------------------------------

def test_cli_json(cli, tmp_path):
    path = tmp_path / "two.csv"
    path.write_bytes(generic_csv())
    code, out, _ = cli("cgm", str(path), "--json")
    result = json.loads(out)
    assert code == 0 and set(result) == {"source", "units", "subjects"}
    subject = result["subjects"][0]
    assert set(subject) == {"id", "metrics", "days", "readings", "sufficient"}
    assert set(subject["metrics"]) == {
        "mean", "sd", "cv", "gmi", "ea1c", "pct_in_70_180", "pct_below_54", "pct_below_70", "pct_above_180",
        "pct_above_250", "lbgi", "hbgi", "gri", "mage", "conga", "modd", "j_index", "active_percent", "days",
        "readings"}
    code, out, _ = cli("cgm", str(path))
    assert code == 0 and "synthetic-B" in out


def test_cli_errors_are_one_line(cli, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(gzip.compress(b"id,time,gl\n"))
    code, out, err = cli("cgm", str(path))
    assert code == 1 and err.count("\n") == 1 and "gzip" in err and "Traceback" not in err
    code, _, err = cli("cgm", str(tmp_path / "missing.csv"))
    assert code == 1 and err.startswith("error: cannot read")
    path.write_bytes(libreview_csv())
    code, out, _ = cli("cgm", str(path), "--units", "mgdl", "--json")
    assert code == 1 and "mmol/L" in json.loads(out)["error"]


def test_a_huge_single_field_is_refused_before_parsing():
    """The issue's 100 MB single CSV field: the upload guard stops any field over 10 MB (11 MB keeps this fast)."""
    from medui.signals.cgm import read_cgm
    from medui.uploads import UploadRejected

    data = b"id,time,gl\nA,2026-01-01 00:00:00," + b"9" * (11 * 1024 * 1024) + b"\n"
    with pytest.raises(UploadRejected, match="A CSV field is longer than 10 MB"):
        read_cgm(data, "huge.csv")
