"""Synthetic rhythm dataset, the shipped ecg-rhythm model through the registry, and its attributions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medui import config
from medui.registry import RegistryError
from medui.signals.ecg import rhythm, synth

LEADS_12 = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    rhythm.clear_cache()
    yield
    rhythm.clear_cache()


def test_dataset_shapes_labels_and_determinism():
    signals, labels = synth.make_dataset(2, seed=3, fs=100, seconds=10, leads=2)
    assert signals.shape == (10, 2, 1000) and signals.dtype == np.float32
    assert sorted(set(labels)) == sorted(synth.CLASSES) and list(labels).count("sinus rhythm") == 2
    again, _ = synth.make_dataset(2, seed=3, fs=100, seconds=10, leads=2)
    other, _ = synth.make_dataset(2, seed=4, fs=100, seconds=10, leads=2)
    assert np.array_equal(signals, again) and not np.array_equal(signals, other)
    one, _ = synth.make_dataset(1, seed=0, fs=250, seconds=4, leads=1)
    assert one.shape == (5, 1, 1000) and np.isfinite(one).all()
    with pytest.raises(ValueError):
        synth.make_dataset(1, seed=0, leads=3)


def test_write_npz_is_readable_by_the_training_task(tmp_path):
    path = synth.write_npz(tmp_path / "d.npz", 1, seed=0)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["signals"].shape == (5, 1, 1000) and float(npz["fs"]) == 100.0
        assert npz["labels"].dtype.kind == "U"


def _rr_irregularity(signal: np.ndarray, fs: float) -> float:
    import neurokit2 as nk

    _, info = nk.ecg_peaks(signal, sampling_rate=fs)
    rr = np.diff(info["ECG_R_Peaks"]) / fs
    return float(np.std(np.diff(rr)) / rr.mean())  # RMSSD-like, relative to the mean RR


def test_af_is_more_irregular_than_sinus_and_rates_match_the_class():
    import neurokit2 as nk

    signals, labels = synth.make_dataset(4, seed=11, fs=100)
    irr = {c: np.median([_rr_irregularity(s[0], 100) for s, lab in zip(signals, labels) if lab == c])
           for c in ("sinus rhythm", "atrial fibrillation")}
    assert irr["atrial fibrillation"] > 3 * irr["sinus rhythm"]
    rates = {}
    for s, lab in zip(signals, labels):
        _, info = nk.ecg_peaks(s[0], sampling_rate=100)
        rates.setdefault(lab, []).append(60 / np.mean(np.diff(info["ECG_R_Peaks"]) / 100))
    assert np.median(rates["sinus bradycardia"]) < 60 < np.median(rates["sinus rhythm"]) < 100
    assert np.median(rates["sinus tachycardia"]) > 100


def test_shipped_model_is_production_verified_and_small():
    from medui.registry import get_version, verify_files

    mv = get_version("ecg-rhythm")
    assert mv.shipped and mv.stage == "production" and mv.version == "1"
    verify_files(mv)
    assert "not for clinical use" in mv.provenance["note"]
    assert mv.metrics["accuracy"] >= 0.9 and set(mv.metrics["auroc_per_class"]) == set(synth.CLASSES)
    assert sum(f.bytes for f in mv.files) < 400_000
    manifest = json.loads((config.SHIPPED_MODELS_DIR / "ecg-rhythm" / "1" / "manifest.json").read_text())
    assert manifest["stage"] == "production"


@pytest.mark.slow
def test_shipped_model_classifies_fresh_records():
    signals, labels = synth.make_dataset(10, seed=2024, fs=100)  # training used seed 0
    hits = [rhythm.classify(s, 100, ["II"], explain=False)["rhythm"][0]["label"] == lab for s, lab in zip(signals, labels)]
    assert np.mean(hits) >= 0.8
    assert "attributions" not in rhythm.classify(signals[0], 100, ["II"], explain=False)


def test_classify_output_and_attributions_on_a_12_lead_500hz_record():
    two, _labels = synth.make_dataset(1, seed=77, fs=500, leads=2, classes=("sinus bradycardia",))
    record = np.concatenate([two[0]] * 6)  # 12 leads, 5000 samples
    record[3] = 0.0  # a flat lead is left out, with a warning
    out = rhythm.classify(record, 500, LEADS_12)
    probs = [r["probability"] for r in out["rhythm"]]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-6
    assert out["rhythm"][0]["label"] == "sinus bradycardia"
    assert out["model"]["name"] == "ecg-rhythm" and out["model"]["version"] == "1"
    attr = out["attributions"]
    assert attr["method"] == "integrated_gradients" and "standardisation" in attr["baseline"]
    per_sample = np.array(attr["per_sample"])
    assert per_sample.shape == record.shape
    assert np.all(per_sample[3] == 0) and attr["per_lead"]["aVR"] == 0
    assert set(attr["per_lead"]) == set(LEADS_12) and abs(sum(attr["per_lead"].values()) - 1) < 1e-9
    # Completeness: IG in the model's space adds up to logit(x) - logit(baseline), up to the reported error,
    # and the sum-preserving map back to 500 Hz keeps the total.
    change = attr["logit"] - attr["baseline_logit"]
    assert abs(attr["sum"] - attr["convergence_delta"] - change) < 1e-3 * max(1.0, abs(change))
    assert abs(attr["sum"] - change) < 0.15 * max(1.0, abs(change))
    assert abs(per_sample.sum() - attr["sum"]) < 1e-6 * max(1.0, abs(attr["sum"]))
    assert any("flat" in w for w in out["warnings"])


def test_ig_completeness_over_several_records():
    signals, _labels = synth.make_dataset(2, seed=5, fs=100)
    errors = []
    for s in signals:
        attr = rhythm.classify(s, 100, ["II"], ig_steps=48)["attributions"]
        change = attr["logit"] - attr["baseline_logit"]
        errors.append(abs(attr["sum"] - change) / max(1.0, abs(change)))
    assert np.median(errors) < 0.05


def test_long_and_short_records_and_occlusion():
    signals, _ = synth.make_dataset(1, seed=9, fs=250, seconds=25, leads=1, classes=("sinus tachycardia",))
    out = rhythm.classify(signals[0], 250, ["II"], ig_steps=8)
    assert out["rhythm"][0]["label"] == "sinus tachycardia"
    assert np.array(out["attributions"]["per_sample"]).shape == (1, 6250)
    assert any("windows" in w for w in out["warnings"])
    short = rhythm.classify(signals[0, :, :1500], 250, ["II"], ig_steps=8)
    assert any("shorter" in w for w in short["warnings"])
    occ = rhythm.occlusion(signals[0, :, :2500], 250, ["II"])
    assert occ["attributions"]["method"] == "occlusion"
    assert np.array(occ["attributions"]["per_sample"]).shape == (1, 2500)
    with pytest.raises(ValueError):
        rhythm.classify(signals[0], 250, ["I", "II"])


def test_forward_from_standardised_matches_the_network():
    import torch

    model, _labels, _arch, _ = rhythm._load()
    signals, _ = synth.make_dataset(1, seed=1, fs=100)
    x = torch.from_numpy(signals)
    z = torch.from_numpy(np.stack([rhythm._standardise(s.astype(np.float64)) for s in signals]).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(model(x).logits, rhythm._FromStandardised(model)(z), atol=1e-4)


def test_segment_attribution_sums_on_a_toy_example():
    per_sample = [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]
    out = rhythm.segment_attribution(per_sample, [("P", 0, 2), ("QRS", 2, 4), ("T", 4, 6), ("P", 5, 99)])
    assert [s["attribution"] for s in out["segments"]] == [4.0, 8.0, 12.0, 6.5]
    assert out["segments"][1]["per_lead"] == [7.0, 1.0]
    assert out["by_label"] == {"P": 10.5, "QRS": 8.0, "T": 12.0}
    assert rhythm.segment_attribution([1.0, 2.0], [("QRS", 1, 1)])["segments"][0]["attribution"] == 0.0


def test_registry_error_when_no_model_is_registered(shipped_models):
    signals, _ = synth.make_dataset(1, seed=0, fs=100, classes=("sinus rhythm",))
    with pytest.raises(RegistryError):
        rhythm.classify(signals[0], 100, ["II"])
    with pytest.raises(RegistryError):
        rhythm.occlusion(signals[0], 100, ["II"])
