"""The learned risk model: cohort loaders, the shipped calibrated MLP, its attributions, and training."""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import numpy as np
import pytest
import torch

from medui import config, registry
from medui.risk import cohorts
from medui.risk import model as risk_model
from medui.risk.base import RiskInputError
from medui.risk.model import describe, predict

HIGH = {"age": 65, "sex": "male", "smoker": True, "cigs_per_day": 20, "systolic_bp": 170, "diabetes": True,
        "total_cholesterol": 280}
LOW = {"age": 40, "sex": "female", "smoker": False, "systolic_bp": 110, "total_cholesterol": 180}
FULL = {"age": 52, "sex": "female", "smoker": True, "cigs_per_day": 10, "bp_treated": False,
        "prevalent_stroke": False, "prevalent_hypertension": True, "diabetes": False, "total_cholesterol": 240,
        "systolic_bp": 142, "diastolic_bp": 88, "bmi": 27.5, "heart_rate": 76, "glucose": 85}


def _assert_sums(result: dict, tolerance: float = 1e-3) -> None:
    total = sum(a["contribution"] for a in result["attributions"])
    assert total == pytest.approx(result["probability"] - result["baseline"]["probability"], abs=tolerance)


# ------------------------------------------------------------------------------------------------- cohorts
def test_framingham_loader_reads_old_mac_line_endings():
    path = cohorts.data_file(cohorts.FRAMINGHAM_FILE)
    raw = path.read_bytes()
    assert b"\r" in raw and b"\n" not in raw  # the file really is \r-only: a naive reader sees one line
    cohort = cohorts.load_framingham()
    assert len(cohort.frame) == 4240
    assert tuple(cohort.frame.columns) == cohorts.FRAMINGHAM_COLUMNS
    assert int(cohort.y.sum()) == int(cohort.frame["TenYearCHD"].sum()) == 644
    assert cohort.sha256 == hashlib.sha256(raw).hexdigest()
    assert list(cohort.inputs.columns) == risk_model.SPECS["framingham"].keys
    assert set(cohort.inputs["sex"]) == {"female", "male"}
    assert cohort.inputs["glucose"].isna().sum() == 388  # missing stays missing until training imputes it


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_csv_reader_accepts_any_line_ending(tmp_path, newline):
    path = tmp_path / "tiny.csv"
    path.write_bytes(newline.join(["a,b", "1,2", "3,", ""]).encode())
    frame, digest = cohorts._read_csv(path, ("a", "b"))
    assert frame.shape == (2, 2) and math.isnan(frame["b"][1])
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_uci_loader_sites_and_missing_zeros():
    cohort = cohorts.load_uci()
    assert len(cohort.frame) == 920
    assert set(cohorts.sites(cohort)) == set(cohorts.UCI_SITES)
    swiss = cohorts.sites(cohort) == "Switzerland"
    assert cohort.inputs["total_cholesterol"][swiss].isna().all()  # recorded as 0 = not measured
    assert int(cohort.y.sum()) == int((cohort.frame["num"] > 0).sum())


# ------------------------------------------------------------------------------------- the shipped model
def test_shipped_model_verifies_and_ranks_risk():
    mv = registry.get_version("risk-chd")  # the real repository models/, production by its manifest
    assert mv.shipped and mv.stage == "production" and mv.task == "risk"
    registry.verify_files(mv)
    assert (mv.directory / "model.safetensors").stat().st_size < 10_000

    high, low = predict(HIGH), predict(LOW)
    assert 0 < low["probability"] < high["probability"] < 1
    assert high["model"] == "risk-chd" and high["version"] == mv.version
    for result in (high, low):
        _assert_sums(result)
        contributions = [abs(a["contribution"]) for a in result["attributions"]]
        assert contributions == sorted(contributions, reverse=True)
        assert {a["feature"] for a in result["attributions"]} == set(risk_model.SPECS["framingham"].keys)
    top = {a["feature"]: a["contribution"] for a in high["attributions"][:3]}
    assert top.get("age", 0) > 0 and top.get("systolic_bp", 0) > 0
    assert high["baseline"]["inputs"]["age"] == mv.provenance["imputation"]["age"]


def test_full_profile_and_plain_words():
    result = predict(FULL)
    assert result["imputed"] == [] and result["out_of_distribution"] == []
    _assert_sums(result)
    assert describe({"feature": "systolic_bp", "label": "systolic BP", "value": 162, "unit": "mmHg",
                     "contribution": 0.031}) == "systolic BP 162 mmHg adds 3.1 percentage points"
    assert describe({"feature": "diabetes", "label": "diabetes", "value": False, "unit": "",
                     "contribution": -0.012}) == "diabetes: no takes away 1.2 percentage points"
    for a in result["attributions"]:
        assert a["label"] in describe(a)


def test_missing_values_are_imputed_and_listed_and_outliers_flagged():
    result = predict({"age": 85, "sex": "male", "smoker": True, "systolic_bp": 230, "glucose": None})
    mv = registry.get_version("risk-chd")
    assert "glucose" in result["imputed"] and "cigs_per_day" in result["imputed"]  # smoker: the smokers' median
    assert "age" not in result["imputed"] and "sex" not in result["imputed"]
    values = {a["feature"]: a for a in result["attributions"]}
    assert values["glucose"]["value"] == mv.provenance["imputation"]["glucose"] and values["glucose"]["imputed"]
    assert values["cigs_per_day"]["value"] == mv.provenance["imputation"]["cigs_per_day_if_smoker"]
    flagged = {f["feature"]: f for f in result["out_of_distribution"]}
    assert set(flagged) == {"age", "systolic_bp"}
    assert flagged["age"]["high"] == mv.provenance["feature_ranges"]["age"][1] < 85
    assert "(missing: training median used)" in describe(values["glucose"])
    _assert_sums(result)

    empty = predict({})  # everything imputed: exactly the baseline patient
    assert len(empty["imputed"]) == 14
    assert empty["probability"] == pytest.approx(empty["baseline"]["probability"], abs=1e-6)

    derived = predict({"smoker": False, "sbp": 140, "hdl": 50})  # other calculators' fields pass through
    assert derived["derived"] == [{"feature": "cigs_per_day", "value": 0.0, "reason": "non-smoker"}]
    assert "cigs_per_day" not in derived["imputed"] and "systolic_bp" in derived["imputed"]
    assert derived["ignored"] == ["hdl", "sbp"]


@pytest.mark.parametrize("inputs, field", [
    ({"age": "65"}, "age"),
    ({"smoker": "yes"}, "smoker"),
    ({"diabetes": 1}, "diabetes"),
    ({"sex": "M"}, "sex"),
    ({"systolic_bp": True}, "systolic_bp"),
    ({"glucose": float("inf")}, "glucose"),
    ({"total_cholesterol": 5.2}, "total_cholesterol"),  # mmol/L typed into a mg/dL field
    ({"smoker": False, "cigs_per_day": 10}, "cigs_per_day"),
])
def test_wrong_inputs_are_refused_naming_the_field(inputs, field):
    with pytest.raises(RiskInputError, match=field):
        predict(inputs)


def test_shipped_metrics_are_sane():
    chd = registry.get_version("risk-chd")
    test = chd.metrics["test"]
    assert test["mlp_calibrated"]["auroc"] > 0.65 and chd.metrics["auroc"] == test["mlp_calibrated"]["auroc"]
    assert test["gbm"]["auroc"] > 0.6
    for scorer in ("mlp_uncalibrated", "mlp_calibrated", "gbm"):
        assert test[scorer]["brier"] < test[scorer]["brier_no_skill"]
        assert len(test[scorer]["reliability"]["curve"]) == 10
    assert chd.metrics["calibration_method"] in ("platt", "isotonic")
    data = chd.provenance["data"]
    assert data["sha256"] == cohorts.load_framingham().sha256 and data["rows"] == 4240
    assert chd.provenance["split"]["test"]["n"] == test["mlp_calibrated"]["n"] == 848

    uci = registry.get_version("risk-heart-uci", 1)
    loso = uci.metrics["leave_one_site_out"]
    for site in cohorts.UCI_SITES:
        assert 0.5 < loso[site]["mlp_auroc"] <= 1 and 0.5 < loso[site]["gbm_auroc"] <= 1
    assert uci.provenance["data"]["sha256"] == cohorts.load_uci().sha256


def test_uci_model_predicts_with_its_own_inputs():
    result = predict({"age": 60, "sex": "male", "chest_pain": "asymptomatic", "exercise_angina": True,
                      "st_depression": 2.0}, model="risk-heart-uci", version=1)
    assert result["model"] == "risk-heart-uci" and 0.5 < result["probability"] < 1
    _assert_sums(result)
    with pytest.raises(RiskInputError, match="chest_pain"):
        predict({"chest_pain": "crushing"}, model="risk-heart-uci", version=1)


# ----------------------------------------------------------------------------------- registry behaviour
def _copy_shipped(root, version="1"):
    target = root / "risk-chd" / version
    shutil.copytree(config.REPO_ROOT / "models" / "risk-chd" / "1", target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = version
    if version != "1":
        manifest.pop("stage")
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_model_is_loaded_through_the_registry_and_promotion_is_picked_up(shipped_models):
    _copy_shipped(shipped_models, "1")
    _copy_shipped(shipped_models, "2")
    assert predict(LOW)["version"] == "1"
    registry.promote("risk-chd", "2", actor="tester")
    assert predict(LOW)["version"] == "2"

    weights = shipped_models / "risk-chd" / "1" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    risk_model._CACHE.clear()
    with pytest.raises(registry.RegistryError, match="sha256"):
        predict(LOW, version=1)


# -------------------------------------------------------------------------------------------- training
def test_training_smoke_writes_a_registry_manifest(shipped_models):
    from medui.risk import train

    result = train.train_framingham(shipped_models, seed=1, epochs=40, max_rows=400, n_boot=0,
                                    calibration="isotonic")
    mv = registry.get_version("risk-chd")
    assert mv.directory == shipped_models / "risk-chd" / "1" and mv.stage == "production"
    assert mv.metrics["calibration_method"] == "isotonic" and mv.provenance["split"]["subsample_rows"] == 400
    assert result["metrics"]["test"]["mlp_calibrated"]["n"] == 80
    registry.verify_files(mv)

    state = registry.load_state_dict(mv)
    grid = torch.linspace(-8, 8, 401)
    for kind in ("isotonic", "platt"):
        calibration = {k: v for k, v in state.items() if k.startswith("calibration.")}
        if kind == "platt":
            train_state = train.calibration_tensors("platt", np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]),
                                                    np.array([0, 0, 1, 0, 1, 1]))
            calibration = train_state
        p = risk_model.calibrate(grid, calibration)
        assert torch.all(p[1:] >= p[:-1] - 1e-7), f"{kind} calibration is not monotone"
        assert float(p.min()) >= 0 and float(p.max()) <= 1

    result = predict(HIGH)
    assert result["calibration"] == "isotonic"
    _assert_sums(result)  # log-odds are integrated, so the isotonic map's steep steps cost no accuracy

    with pytest.raises(FileExistsError):
        train.train_framingham(shipped_models, seed=1, epochs=1, max_rows=400, n_boot=0)


def test_training_is_reproducible(tmp_path):
    from medui.risk import train

    digests = []
    for out in (tmp_path / "a", tmp_path / "b"):
        train.train_framingham(out, seed=3, epochs=20, max_rows=300, n_boot=0)
        digests.append(hashlib.sha256((out / "risk-chd" / "1" / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
