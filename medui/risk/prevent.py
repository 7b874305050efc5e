"""AHA PREVENT base model: 10- and 30-year risk of total CVD, ASCVD, heart failure, CHD and stroke.

Khan SS, Matsushita K, Sang Y, et al. Development and Validation of the American Heart Association's
PREVENT Equations. Circulation 2024;149(6):430–449. doi:10.1161/CIRCULATIONAHA.123.067626

Where the coefficients come from
--------------------------------
The four tables below are the paper's Supplemental Table S12A (base model, 10-year) and S12F (base model,
30-year), split by sex, one published row per line; a blank published cell (the term is not in that outcome's
model: lipids and statin for heart failure, BMI for everything but heart failure) is 0.0 here. Cross-checks:
  * value by value against preventr (martingmayer/preventr, R/CRAN), whose binary coefficient tables were read
    through two open-source ports that extracted them: all 230 ten-year values agree exactly (a TypeScript port,
    full precision), all 240 thirty-year values to six decimals (a Go port, rounded to six) - this is the second
    source for the CHD and stroke columns, which AHAprevent's outputs do not include;
  * numerically against AHAprevent, the PREVENT authors' own R package (its outputs recorded in
    kingrc15/pyprevent tests/fixtures/r_reference.csv): total CVD, ASCVD and heart failure, both horizons, agree
    to ~1e-13 percentage points, except female total CVD, which AHAprevent computes with 0.360078 for the
    "SBP >= 110" term where S12A prints 0.3600781 (difference < 2e-6 percentage points);
  * numerically against pyprevent 0.1.6 (PyPI; a separate Rust implementation of total CVD, ASCVD and heart
    failure) over 14,000 random in-range inputs: agreement to ~5e-14 percentage points;
  * against preventr's own test suite (all five outcomes, both horizons); see tests/test_risk_prevent.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from medui.risk.base import Calculator, Field, register

CITATION = (
    "Khan SS, Matsushita K, Sang Y, et al. Development and Validation of the American Heart Association's "
    "PREVENT Equations. Circulation 2024;149(6):430-449. doi:10.1161/CIRCULATIONAHA.123.067626 "
    "(base model; coefficients from Supplemental Tables S12A and S12F)"
)

# The paper converts cholesterol with this factor ("(TC - HDL-C) x 0.02586"); preventr uses the same.
MG_DL_TO_MMOL_L = 0.02586

OUTCOMES: tuple[str, ...] = ("cvd", "ascvd", "hf", "chd", "stroke")
HORIZONS: tuple[int, ...] = (10, 30)

# The 30-year equations were developed only in people aged 30-59 (Khan et al., Methods), so from 60 on
# the 30-year outputs are null rather than extrapolated.
THIRTY_YEAR_AGE_LIMIT = 60

# Each table is one sex's half of a published table, one published row per line, its columns the outcomes
# in OUTCOMES order, so every cell can be read off against the supplement; a blank published cell is 0.0.
# fmt: off
# Supplemental Table S12A (base model, 10-year), women.
#                                CVD         ASCVD       HF          CHD         stroke
_S12A_FEMALE: dict[str, tuple[float, ...]] = {
    "age":                      (0.7939329,  0.719883,   0.8998235,  0.7587146,  0.6907849),
    "non_hdl":                  (0.0305239,  0.1176967,  0.0,        0.1810949,  0.0534279),
    "hdl":                      (-0.1606857, -0.151185,  0.0,        -0.2014507, -0.1055109),
    "sbp_lt_110":               (-0.2394003, -0.0835358, -0.4559771, -0.0881827, -0.113078),
    "sbp_ge_110":               (0.3600781,  0.3592852,  0.3576505,  0.3547731,  0.3665217),
    "diabetes":                 (0.8667604,  0.8348585,  1.038346,   0.9045358,  0.8013721),
    "smoker":                   (0.5360739,  0.4831078,  0.583916,   0.5410917,  0.4187039),
    "bmi_lt_30":                (0.0,        0.0,        -0.0072294, 0.0,        0.0),
    "bmi_ge_30":                (0.0,        0.0,        0.2997706,  0.0,        0.0),
    "egfr_lt_60":               (0.6045917,  0.4864619,  0.7451638,  0.5198725,  0.4539767),
    "egfr_ge_60":               (0.0433769,  0.0397779,  0.0557087,  0.0325935,  0.0515087),
    "bp_treated":               (0.3151672,  0.2265309,  0.3534442,  0.2010642,  0.2494624),
    "statin":                   (-0.1477655, -0.0592374, 0.0,        -0.036195,  -0.0798829),
    "bp_treated_x_sbp_ge_110":  (-0.0663612, -0.0395762, -0.0981511, -0.0891238, -0.0079039),
    "statin_x_non_hdl":         (0.1197879,  0.0844423,  0.0,        0.0750716,  0.0833101),
    "age_x_non_hdl":            (-0.0819715, -0.0567839, 0.0,        -0.0683256, -0.0409242),
    "age_x_hdl":                (0.0306769,  0.0325692,  0.0,        0.0484755,  0.016994),
    "age_x_sbp_ge_110":         (-0.0946348, -0.1035985, -0.0946663, -0.0898086, -0.1191213),
    "age_x_diabetes":           (-0.27057,   -0.2417542, -0.3581041, -0.2569041, -0.2480549),
    "age_x_smoker":             (-0.078715,  -0.0791142, -0.1159453, -0.0786607, -0.0998063),
    "age_x_bmi_ge_30":          (0.0,        0.0,        -0.003878,  0.0,        0.0),
    "age_x_egfr_lt_60":         (-0.1637806, -0.1671492, -0.1884289, -0.1597513, -0.1759075),
    "constant":                 (-3.307728,  -3.819975,  -4.310409,  -4.608751,  -4.409199),
}

# Supplemental Table S12A (base model, 10-year), men.
#                                CVD         ASCVD       HF          CHD         stroke
_S12A_MALE: dict[str, tuple[float, ...]] = {
    "age":                      (0.7688528,  0.7099847,  0.8972642,  0.7423283,  0.722513),
    "non_hdl":                  (0.0736174,  0.1658663,  0.0,        0.2572109,  0.0263348),
    "hdl":                      (-0.0954431, -0.1144285, 0.0,        -0.1820374, -0.0248959),
    "sbp_lt_110":               (-0.4347345, -0.2837212, -0.6811466, -0.3174515, -0.268104),
    "sbp_ge_110":               (0.3362658,  0.3239977,  0.3634461,  0.312778,   0.3474634),
    "diabetes":                 (0.7692857,  0.7189597,  0.923776,   0.7485249,  0.684699),
    "smoker":                   (0.4386871,  0.3956973,  0.5023736,  0.3912047,  0.3874844),
    "bmi_lt_30":                (0.0,        0.0,        -0.0485841, 0.0,        0.0),
    "bmi_ge_30":                (0.0,        0.0,        0.3726929,  0.0,        0.0),
    "egfr_lt_60":               (0.5378979,  0.3690075,  0.6926917,  0.376487,   0.3877827),
    "egfr_ge_60":               (0.0164827,  0.0203619,  0.0251827,  0.0193687,  0.0201965),
    "bp_treated":               (0.288879,   0.2036522,  0.2980922,  0.1588199,  0.232963),
    "statin":                   (-0.1337349, -0.0865581, 0.0,        -0.0494555, -0.1178935),
    "bp_treated_x_sbp_ge_110":  (-0.0475924, -0.0322916, -0.0497731, -0.0577851, 0.0120926),
    "statin_x_non_hdl":         (0.150273,   0.114563,   0.0,        0.0809765,  0.155739),
    "age_x_non_hdl":            (-0.0517874, -0.0300005, 0.0,        -0.0517872, 0.0141928),
    "age_x_hdl":                (0.0191169,  0.0232747,  0.0,        0.0489033,  -0.0111745),
    "age_x_sbp_ge_110":         (-0.1049477, -0.0927024, -0.1289201, -0.0850404, -0.1155391),
    "age_x_diabetes":           (-0.2251948, -0.2018525, -0.3040924, -0.2107552, -0.2123743),
    "age_x_smoker":             (-0.0895067, -0.0970527, -0.1401688, -0.1206397, -0.0824133),
    "age_x_bmi_ge_30":          (0.0,        0.0,        0.0068126,  0.0,        0.0),
    "age_x_egfr_lt_60":         (-0.1543702, -0.1217081, -0.1797778, -0.07795,   -0.180789),
    "constant":                 (-3.031168,  -3.500655,  -3.946391,  -4.156753,  -4.20881),
}

# Supplemental Table S12F (base model, 30-year; adds squared age), women.
#                                CVD         ASCVD       HF          CHD         stroke
_S12F_FEMALE: dict[str, tuple[float, ...]] = {
    "age":                      (0.5503079,  0.4669202,  0.6254374,  0.4912423,  0.4366978),
    "age_squared":              (-0.0928369, -0.0893118, -0.0983038, -0.0917078, -0.0873673),
    "non_hdl":                  (0.0409794,  0.1256901,  0.0,        0.1878256,  0.0586334),
    "hdl":                      (-0.1663306, -0.1542255, 0.0,        -0.2035703, -0.1069016),
    "sbp_lt_110":               (-0.1628654, -0.0018093, -0.3919241, -0.0030222, -0.0317106),
    "sbp_ge_110":               (0.3299505,  0.322949,   0.3142295,  0.3111757,  0.3272741),
    "diabetes":                 (0.6793894,  0.6296707,  0.8330787,  0.6803247,  0.5841726),
    "smoker":                   (0.3196112,  0.268292,   0.3438651,  0.3215313,  0.2045681),
    "bmi_lt_30":                (0.0,        0.0,        0.0594874,  0.0,        0.0),
    "bmi_ge_30":                (0.0,        0.0,        0.2525536,  0.0,        0.0),
    "egfr_lt_60":               (0.1857101,  0.100106,   0.2981642,  0.1252615,  0.0765812),
    "egfr_ge_60":               (0.0553528,  0.0499663,  0.0667159,  0.0414579,  0.0603226),
    "bp_treated":               (0.2894,     0.1875292,  0.333921,   0.1561303,  0.2087816),
    "statin":                   (-0.075688,  0.0152476,  0.0,        0.0384138,  -0.0095137),
    "bp_treated_x_sbp_ge_110":  (-0.056367,  -0.0276123, -0.0893177, -0.0795531, 0.0014436),
    "statin_x_non_hdl":         (0.1071019,  0.0736147,  0.0,        0.0635262,  0.0720012),
    "age_x_non_hdl":            (-0.0751438, -0.0521962, 0.0,        -0.0637665, -0.0361779),
    "age_x_hdl":                (0.0301786,  0.0316918,  0.0,        0.0474074,  0.015888),
    "age_x_sbp_ge_110":         (-0.0998776, -0.1046101, -0.0974299, -0.0876484, -0.1179062),
    "age_x_diabetes":           (-0.3206166, -0.2727793, -0.404855,  -0.2803099, -0.2710221),
    "age_x_smoker":             (-0.1607862, -0.1530907, -0.1982991, -0.1513626, -0.1702836),
    "age_x_bmi_ge_30":          (0.0,        0.0,        -0.0035619, 0.0,        0.0),
    "age_x_egfr_lt_60":         (-0.1450788, -0.1299149, -0.1564215, -0.1130454, -0.1320992),
    "constant":                 (-1.318827,  -1.974074,  -2.205379,  -2.733866,  -2.62078),
}

# Supplemental Table S12F (base model, 30-year; adds squared age), men.
#                                CVD         ASCVD       HF          CHD         stroke
_S12F_MALE: dict[str, tuple[float, ...]] = {
    "age":                      (0.4627309,  0.3994099,  0.5681541,  0.4171209,  0.4003448),
    "age_squared":              (-0.0984281, -0.0937484, -0.1048388, -0.0949994, -0.0935927),
    "non_hdl":                  (0.0836088,  0.1744643,  0.0,        0.2651913,  0.0309419),
    "hdl":                      (-0.1029824, -0.120203,  0.0,        -0.1879446, -0.0280763),
    "sbp_lt_110":               (-0.2140352, -0.0665117, -0.4761564, -0.0971746, -0.047704),
    "sbp_ge_110":               (0.2904325,  0.2753037,  0.30324,    0.258931,   0.2925734),
    "diabetes":                 (0.5331276,  0.4790257,  0.6840338,  0.4956463,  0.4236823),
    "smoker":                   (0.2141914,  0.1782635,  0.2656273,  0.1728844,  0.1675238),
    "bmi_lt_30":                (0.0,        0.0,        0.0833107,  0.0,        0.0),
    "bmi_ge_30":                (0.0,        0.0,        0.26999,    0.0,        0.0),
    "egfr_lt_60":               (0.1155556,  -0.0218789, 0.2541805,  -0.0091955, -0.0009216),
    "egfr_ge_60":               (0.0603775,  0.0602553,  0.0638923,  0.0578155,  0.0575221),
    "bp_treated":               (0.232714,   0.1421182,  0.2583631,  0.0939196,  0.1685514),
    "statin":                   (-0.0272112, 0.0135996,  0.0,        0.0508921,  -0.020829),
    "bp_treated_x_sbp_ge_110":  (-0.0384488, -0.0218265, -0.0391938, -0.0486024, 0.0230042),
    "statin_x_non_hdl":         (0.134192,   0.1013148,  0.0,        0.0669478,  0.1413652),
    "age_x_non_hdl":            (-0.0511759, -0.0312619, 0.0,        -0.0533361, 0.0145411),
    "age_x_hdl":                (0.0165865,  0.020673,   0.0,        0.0461425,  -0.0149606),
    "age_x_sbp_ge_110":         (-0.1101437, -0.0920935, -0.1269124, -0.0812234, -0.1118468),
    "age_x_diabetes":           (-0.2585943, -0.2159947, -0.3273572, -0.216315,  -0.2152953),
    "age_x_smoker":             (-0.1566406, -0.1548811, -0.2043019, -0.1749197, -0.1339295),
    "age_x_bmi_ge_30":          (0.0,        0.0,        -0.0182831, 0.0,        0.0),
    "age_x_egfr_lt_60":         (-0.1166776, -0.0712547, -0.1342618, -0.0241467, -0.1225081),
    "constant":                 (-1.148204,  -1.736444,  -1.95751,   -2.376762,  -2.458022),
}
# fmt: on


def _by_outcome(table: Mapping[str, tuple[float, ...]]) -> dict[str, dict[str, float]]:
    """Turn one sex's table (rows = terms, columns = OUTCOMES) into one {term: beta} per outcome."""
    return {outcome: {term: row[i] for term, row in table.items()} for i, outcome in enumerate(OUTCOMES)}


def _models(
    female: Mapping[str, tuple[float, ...]], male: Mapping[str, tuple[float, ...]]
) -> dict[tuple[str, str], dict[str, float]]:
    """{(sex, outcome): {term: beta}} for one horizon."""
    models = {"female": _by_outcome(female), "male": _by_outcome(male)}
    return {(sex, outcome): betas for sex, by_outcome in models.items() for outcome, betas in by_outcome.items()}


# COEFFICIENTS[horizon][(sex, outcome)] -> {term: beta}
COEFFICIENTS: dict[int, dict[tuple[str, str], dict[str, float]]] = {
    10: _models(_S12A_FEMALE, _S12A_MALE),
    30: _models(_S12F_FEMALE, _S12F_MALE),
}


def predictors(values: Mapping[str, Any]) -> dict[str, float]:
    """The published transformed predictors (Khan et al., Supplemental Table S12 footnotes).

    Continuous terms are centred (age 55, non-HDL 3.5 mmol/L, HDL 1.3 mmol/L, SBP 130, BMI 25, eGFR 90);
    SBP, BMI and eGFR are linear splines with knots at 110 mmHg, 30 kg/m² and 60 mL/min/1.73m², and the
    eGFR slopes are per 15 units *lower* (hence the division by -15).
    """
    age = (values["age"] - 55) / 10
    non_hdl = (values["total_cholesterol"] - values["hdl"]) * MG_DL_TO_MMOL_L - 3.5
    hdl = (values["hdl"] * MG_DL_TO_MMOL_L - 1.3) / 0.3
    sbp, bmi, egfr = values["systolic_bp"], values["bmi"], values["egfr"]
    sbp_ge_110 = (max(sbp, 110) - 130) / 20
    bmi_ge_30 = (max(bmi, 30) - 30) / 5
    egfr_lt_60 = (min(egfr, 60) - 60) / -15
    diabetes, smoker = float(values["diabetes"]), float(values["smoker"])
    bp_treated, statin = float(values["bp_treated"]), float(values["statin"])
    return {
        "age": age,
        "age_squared": age * age,  # only the 30-year models carry a coefficient for it
        "non_hdl": non_hdl,
        "hdl": hdl,
        "sbp_lt_110": (min(sbp, 110) - 110) / 20,
        "sbp_ge_110": sbp_ge_110,
        "diabetes": diabetes,
        "smoker": smoker,
        "bmi_lt_30": (min(bmi, 30) - 25) / 5,
        "bmi_ge_30": bmi_ge_30,
        "egfr_lt_60": egfr_lt_60,
        "egfr_ge_60": (max(egfr, 60) - 90) / -15,
        "bp_treated": bp_treated,
        "statin": statin,
        "bp_treated_x_sbp_ge_110": bp_treated * sbp_ge_110,
        "statin_x_non_hdl": statin * non_hdl,
        "age_x_non_hdl": age * non_hdl,
        "age_x_hdl": age * hdl,
        "age_x_sbp_ge_110": age * sbp_ge_110,
        "age_x_diabetes": age * diabetes,
        "age_x_smoker": age * smoker,
        "age_x_bmi_ge_30": age * bmi_ge_30,
        "age_x_egfr_lt_60": age * egfr_lt_60,
        "constant": 1.0,
    }


def linear_predictor(betas: Mapping[str, float], x: Mapping[str, float]) -> float:
    """Log-odds: the sum of beta times predictor over the model's terms (the constant's predictor is 1)."""
    return sum(beta * x[term] for term, beta in betas.items())


def risks(values: Mapping[str, Any]) -> dict[str, float | None]:
    """Unrounded risks as fractions, keyed like the outputs; 30-year keys are None from age 60 on."""
    x = predictors(values)
    out: dict[str, float | None] = {}
    for horizon in HORIZONS:
        for outcome in OUTCOMES:
            key = f"{outcome}_{horizon}y_percent"  # a fraction here; _compute turns it into the percent
            if horizon == 30 and values["age"] >= THIRTY_YEAR_AGE_LIMIT:
                out[key] = None
                continue
            # PREVENT is a logistic model: risk = exp(x) / (1 + exp(x)).
            log_odds = linear_predictor(COEFFICIENTS[horizon][(values["sex"], outcome)], x)
            out[key] = 1.0 / (1.0 + math.exp(-log_odds))
    return out


def _compute(values: dict[str, Any]) -> dict[str, Any]:
    # One decimal, as the AHA PREVENT calculator reports it.
    out: dict[str, Any] = {key: None if risk is None else round(100 * risk, 1) for key, risk in risks(values).items()}
    notes: list[str] = []
    if values["age"] >= THIRTY_YEAR_AGE_LIMIT:
        notes.append(
            f"30-year risks are not estimated at age {values['age']:g}: the PREVENT 30-year equations "
            "were developed and validated only for ages 30-59."
        )
    out["notes"] = notes
    return out


RISK_KEYS: tuple[str, ...] = tuple(f"{outcome}_{horizon}y_percent" for horizon in HORIZONS for outcome in OUTCOMES)
OUTPUTS: tuple[str, ...] = (*RISK_KEYS, "notes")

# The validated input ranges as preventr enforces them (SBP capped at 180 mmHg as in preventr, where the AHA web
# calculator accepts up to 200); values outside them are refused rather than extrapolated.
PREVENT = register(
    Calculator(
        name="prevent",
        title="AHA PREVENT (base model): 10- and 30-year cardiovascular risk",
        citation=CITATION,
        fields=(
            Field("age", "Age", low=30, high=79, unit="years", help="30-year risks are estimated only for ages 30-59."),
            Field("sex", "Sex", kind="choice", choices=("female", "male")),
            Field("total_cholesterol", "Total cholesterol", low=130, high=320, unit="mg/dL"),
            Field("hdl", "HDL cholesterol", low=20, high=100, unit="mg/dL"),
            Field("systolic_bp", "Systolic blood pressure", low=90, high=180, unit="mmHg"),
            Field("bp_treated", "On antihypertensive treatment", kind="bool"),
            Field("statin", "On a statin", kind="bool"),
            Field("diabetes", "Diabetes", kind="bool"),
            Field("smoker", "Current smoker", kind="bool", help="Cigarette use within the last 30 days."),
            Field("egfr", "eGFR", low=15, high=140, unit="mL/min/1.73m²"),
            Field(
                "bmi",
                "Body-mass index",
                low=18.5,
                high=39.9,
                unit="kg/m²",
                help="Enters the heart-failure equations only.",
            ),
        ),
        compute=_compute,
        outputs=OUTPUTS,
    )
)
