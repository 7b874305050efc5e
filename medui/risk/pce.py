"""ACC/AHA 2013 Pooled Cohort Equations: 10-year risk of a first hard ASCVD event, ages 40–79."""

from __future__ import annotations

import math
from typing import Any

from medui.risk.base import Calculator, Field, register

# Goff 2013, Appendix 7 Table A. Order of terms: ln age, ln age², ln TC, ln age×ln TC, ln HDL, ln age×ln HDL,
# ln treated SBP, ln age×ln treated SBP, ln untreated SBP, ln age×ln untreated SBP, smoker, ln age×smoker,
# diabetes. A 0 is the paper's "N/A" (the term is not in that equation).
_COEF: dict[tuple[str, str], tuple[float, ...]] = {
    ("white", "female"): (-29.799, 4.884, 13.540, -3.114, -13.578, 3.149, 2.019, 0, 1.957, 0, 7.574, -1.665, 0.661),
    ("african_american", "female"): (17.114, 0, 0.940, 0, -18.920, 4.475, 29.291, -6.432, 27.820, -6.087,
                                     0.691, 0, 0.874),
    ("white", "male"): (12.344, 0, 11.853, -2.664, -7.990, 1.769, 1.797, 0, 1.764, 0, 7.837, -1.795, 0.658),
    ("african_american", "male"): (2.469, 0, 0.302, 0, -0.307, 0, 1.916, 0, 1.809, 0, 0.549, 0, 0.645),
}
# (mean of the individual sums, 10-year baseline survival), same table.
_BASELINE: dict[tuple[str, str], tuple[float, float]] = {
    ("white", "female"): (-29.18, 0.9665),
    ("african_american", "female"): (86.61, 0.9533),
    ("white", "male"): (61.18, 0.9144),
    ("african_american", "male"): (19.54, 0.8954),
}


def _group(v: dict[str, Any]) -> tuple[str, str]:
    # The guideline advises the white equations for races other than African-American.
    return ("african_american" if v["race"] == "african_american" else "white", v["sex"])


def individual_sum(v: dict[str, Any]) -> float:
    """Σ coefficient × value, the paper's "individual sum" (exposed so tests can check it against Table A)."""
    age, tc, hdl, sbp = (math.log(v[k]) for k in ("age", "total_cholesterol", "hdl", "systolic_bp"))
    treated, smoker, diabetes = v["bp_treated"], float(v["smoker"]), float(v["diabetes"])
    terms = (age, age * age, tc, age * tc, hdl, age * hdl,
             sbp if treated else 0.0, age * sbp if treated else 0.0,
             0.0 if treated else sbp, 0.0 if treated else age * sbp,
             smoker, age * smoker, diabetes)
    return sum(c * t for c, t in zip(_COEF[_group(v)], terms, strict=True))


def category(risk_percent: float) -> str:
    """2018 cholesterol / 2019 primary-prevention guideline risk bands."""
    if risk_percent < 5:
        return "low"
    if risk_percent < 7.5:
        return "borderline"
    return "intermediate" if risk_percent < 20 else "high"


def ten_year_risk_percent(total: float, race: str, sex: str) -> float:
    """Table A's last step, 1 − S10^exp(individual sum − mean), unrounded, in percent."""
    mean, s10 = _BASELINE[_group({"race": race, "sex": sex})]
    return 100 * (1 - s10 ** math.exp(total - mean))


def _compute(v: dict[str, Any]) -> dict[str, Any]:
    risk = round(ten_year_risk_percent(individual_sum(v), v["race"], v["sex"]), 1)
    # Band the rounded value, so the shown percentage and its category never disagree (e.g. 4.96 → "5.0", borderline).
    return {"risk_10y_percent": risk, "category": category(risk)}


PCE = register(Calculator(
    name="pce",
    title="Pooled Cohort Equations (ACC/AHA 2013), 10-year ASCVD risk",
    citation=(
        "Goff DC Jr, Lloyd-Jones DM, Bennett G, et al. 2013 ACC/AHA guideline on the assessment of cardiovascular "
        "risk: a report of the American College of Cardiology/American Heart Association Task Force on Practice "
        "Guidelines. Circulation. 2014;129(25 Suppl 2):S49–S73. doi:10.1161/01.cir.0000437741.48606.98. "
        "Risk categories: Arnett DK, Blumenthal RS, Albert MA, et al. 2019 ACC/AHA guideline on the primary "
        "prevention of cardiovascular disease. Circulation. 2019;140(11):e596–e646. "
        "doi:10.1161/CIR.0000000000000678."
    ),
    fields=(
        Field("age", "Age", low=40, high=79, unit="years"),
        Field("sex", "Sex", kind="choice", choices=("female", "male")),
        Field("race", "Race", kind="choice", choices=("white", "african_american", "other"),
              help="'other' uses the white equations, as the guideline advises."),
        Field("total_cholesterol", "Total cholesterol", low=130, high=320, unit="mg/dL"),
        Field("hdl", "HDL cholesterol", low=20, high=100, unit="mg/dL"),
        Field("systolic_bp", "Systolic blood pressure", low=90, high=200, unit="mmHg"),
        Field("bp_treated", "On treatment for high blood pressure", kind="bool"),
        Field("smoker", "Current smoker", kind="bool"),
        Field("diabetes", "Diabetes", kind="bool"),
    ),
    compute=_compute,
    outputs=("risk_10y_percent", "category"),
))
