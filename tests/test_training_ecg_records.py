"""ECG datasets of recording files (a zip of class folders, or a path,label[,fs] CSV manifest), read with the ECG
page's readers and brought to the model's window; generated with medui.signals.ecg.synth."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from medui.registry import get_version
from medui.signals.ecg import synth
from medui.training import DatasetError, JobSpec, SpecError, load_for_inference, run_job, validate_dataset
from medui.training.tasks import get_task

CLASSES = ("sinus rhythm", "atrial fibrillation")
FAST = {"max_steps": 2, "batch_size": 4, "eval_steps": 2, "logging_steps": 1}


def _csv(signal: np.ndarray, fs: float | None, names=("I", "II")) -> str:
    """One recording as CSV text: a time column in seconds when `fs` is given, one column per lead."""
    header = (["time"] if fs else []) + list(names[:len(signal)])
    rows = [",".join(header)]
    for i in range(signal.shape[1]):
        cells = ([f"{i / fs:.5f}"] if fs else []) + [f"{v:.4f}" for v in signal[:, i]]
        rows.append(",".join(cells))
    return "\n".join(rows) + "\n"


def _recordings(n_per_class=6, fs=250, seconds=12.0, leads=2, seed=1):
    return synth.make_dataset(n_per_class, seed, fs=fs, seconds=seconds, leads=leads, classes=CLASSES)


def _zip(tmp_path, signals, labels, fs) -> str:
    path = tmp_path / "ecg.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i, (signal, label) in enumerate(zip(signals, labels)):
            archive.writestr(f"data/{label}/r{i}.csv", _csv(signal, fs))
    return str(path)


def _manifest(tmp_path, signals, labels, rates) -> str:
    (tmp_path / "rec").mkdir()
    lines = ["path,label,fs"]
    for i, (signal, label, fs) in enumerate(zip(signals, labels, rates)):
        (tmp_path / "rec" / f"r{i}.csv").write_text(_csv(signal, None))
        lines.append(f"rec/r{i}.csv,{label},{fs or ''}")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "manifest.csv")


def test_a_zip_of_class_folders_is_resampled_and_cut_to_the_default_window(tmp_path):
    from medui.signals.ecg.rhythm import _resample

    signals, labels = _recordings()  # 12 s at 250 Hz, two leads; the time column gives the rate
    path = _zip(tmp_path, signals, labels, 250)
    examples = get_task("ecg").read(Path(path), JobSpec(task="ecg", data=path))
    assert examples.labels == sorted(CLASSES) and examples.counts == {c: 6 for c in CLASSES}
    assert {x.shape for x in examples.items} == {(2, 1000)}  # 10 s at 100 Hz, the shipped model's window
    assert examples.info["fs"] == 100.0 and examples.info["source_rates"] == [250.0]
    assert examples.info["recordings"] == {"cut": 12} and examples.info["leads"] == 2
    centre = _resample(signals[0].round(4), 250, 100)[:, 100:1100]  # the middle 10 s of 12 s
    np.testing.assert_allclose(examples.items[0], centre, atol=1e-4)


def test_a_manifest_gives_each_rate_and_short_records_are_padded(tmp_path):
    signals, labels = _recordings(seconds=8.0, fs=200)
    path = _manifest(tmp_path, signals, labels, [200] * len(labels))
    report = validate_dataset(JobSpec(task="ecg", data=path))
    assert report["accepted"] == 12 and report["recordings"] == {"padded": 12} and report["samples"] == 1000
    assert report["counts"] == {c: 6 for c in CLASSES}


def test_missing_rate_and_bad_rows_are_refused_with_the_file(tmp_path):
    signals, labels = _recordings()
    path = _manifest(tmp_path, signals, labels, [None] + [250] * (len(labels) - 1))
    with pytest.raises(DatasetError, match="rec/r0.csv: The sampling rate is unknown: the CSV has no time column, "
                                           "give fs in the manifest or the job spec"):
        validate_dataset(JobSpec(task="ecg", data=path))
    assert validate_dataset(JobSpec(task="ecg", data=path, fs=250))["accepted"] == 12  # the spec's fs fills in
    report = validate_dataset(JobSpec(task="ecg", data=path, skip_bad_rows=True))
    assert report["accepted"] == 11 and report["rejected"][0]["file"] == "rec/r0.csv"

    (tmp_path / "rec" / "r1.csv").write_text("I\n0.1\nnot a number\n")
    (tmp_path / "rec" / "r2.csv").write_text(_csv(signals[2][:1], None))  # one lead among two-lead records
    report = validate_dataset(JobSpec(task="ecg", data=path, fs=250, skip_bad_rows=True))
    reasons = [r["reason"] for r in report["rejected"]]
    assert any(r.startswith("rec/r1.csv: Line 3, column 'I'") for r in reasons)
    assert "rec/r2.csv: 1 leads; the other recordings have 2" in reasons
    with pytest.raises(SpecError, match="fs must be 0"):
        JobSpec(task="ecg", fs=20)


def test_not_a_dataset_is_refused(tmp_path):
    (tmp_path / "e.txt").write_text("x")
    with pytest.raises(DatasetError, match="a .csv manifest with path,label"):
        validate_dataset(JobSpec(task="ecg", data=str(tmp_path / "e.txt")))
    (tmp_path / "e.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="e.zip: not a readable zip file"):
        validate_dataset(JobSpec(task="ecg", data=str(tmp_path / "e.zip")))
    (tmp_path / "m.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match="needs a header with path and label columns"):
        validate_dataset(JobSpec(task="ecg", data=str(tmp_path / "m.csv")))


@pytest.mark.slow
def test_csv_recordings_take_a_registered_bases_window_and_train_on_it(tmp_path, shipped_models):
    base = run_job(JobSpec(task="ecg", method="full", name="ecg-base", **FAST))  # the npz sample: 2.5 s at 100 Hz
    signals, labels = _recordings(leads=1, fs=500, seconds=3.0)
    path = _zip(tmp_path, signals, labels, 500)
    examples = get_task("ecg").read(Path(path), JobSpec(task="ecg", data=path, base="ecg-base"))
    assert {x.shape for x in examples.items} == {(1, 250)}
    result = run_job(JobSpec(task="ecg", method="lora", data=path, base=f"ecg-base/{base['version']}",
                             name="ecg-csv", **FAST))
    mv = get_version("ecg-csv", result["version"])
    arch = json.loads((mv.directory / "architecture.json").read_text())["arch"]
    assert arch["fs"] == 100.0 and arch["samples"] == 250 and arch["leads"] == 1
    model, served = load_for_inference(mv)
    assert served == sorted(CLASSES) and mv.provenance["data"] == path
    with torch.no_grad():
        assert model(signals=torch.from_numpy(examples.items[0][None])).logits.shape == (1, 2)

    two_leads, _ = _recordings(leads=2, fs=500, seconds=3.0)
    (tmp_path / "two").mkdir()
    wrong = _zip(tmp_path / "two", two_leads, labels, 500)
    with pytest.raises(DatasetError, match="2 leads; the base model reads 1"):
        validate_dataset(JobSpec(task="ecg", data=wrong, base="ecg-base"))
