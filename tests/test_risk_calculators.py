"""Validated risk calculators against published worked examples; the source is cited beside each expected value."""

from __future__ import annotations

import pytest

from medui.risk import CALCULATORS, RiskInputError, calculate
from medui.risk.pce import category, individual_sum, ten_year_risk_percent

# Goff 2013 (Circulation 2014;129:S49–S73), Appendix 7 Table A worked example: 55 years, TC 213 mg/dL,
# HDL 50 mg/dL, untreated SBP 120 mmHg, nonsmoker, no diabetes.
GOFF_EXAMPLE = {"age": 55, "total_cholesterol": 213, "hdl": 50, "systolic_bp": 120,
                "bp_treated": False, "smoker": False, "diabetes": False}
# (race, sex, Table A individual sum, Table A estimated 10-y risk %)
GOFF_TABLE_A = [
    ("white", "female", -29.67, 2.1),
    ("african_american", "female", 86.16, 3.0),
    ("white", "male", 60.69, 5.3),
    ("african_american", "male", 18.97, 6.1),
]

NO_AF_RISK = {"chf": False, "hypertension": False, "diabetes": False, "stroke_tia": False, "vascular_disease": False}
ALL_AF_RISK = {k: True for k in NO_AF_RISK}
NO_BLEED_RISK = {"hypertension": False, "abnormal_renal": False, "abnormal_liver": False, "stroke": False,
                 "bleeding": False, "labile_inr": False, "drugs": False, "alcohol": False}
# FINDRISC all-zero profile: age < 45, BMI < 25, waist below the lowest band, active, vegetables daily, nothing else.
FINDRISC_ZERO = {"age": 40, "bmi": 22, "waist_cm": 75, "sex": "female", "physical_activity": True,
                 "daily_vegetables": True, "bp_medication": False, "high_glucose_history": False,
                 "family_history": "none"}


def test_all_calculators_registered_with_full_citations():
    assert {"pce", "cha2ds2vasc", "cha2ds2va", "hasbled", "findrisc"} <= set(CALCULATORS)
    for name in ("pce", "cha2ds2vasc", "cha2ds2va", "hasbled", "findrisc"):
        assert "doi:10." in CALCULATORS[name].citation


# --- PCE ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("race", "sex", "paper_sum", "paper_risk"), GOFF_TABLE_A)
def test_pce_individual_sum_matches_goff_table_a(race, sex, paper_sum, paper_risk):
    # Table A prints each sum to 2 decimals.
    assert individual_sum(dict(GOFF_EXAMPLE, race=race, sex=sex)) == pytest.approx(paper_sum, abs=0.01)


@pytest.mark.parametrize(("race", "sex", "paper_sum", "paper_risk"), GOFF_TABLE_A)
def test_pce_survival_step_on_goff_sums_gives_goff_percentages(race, sex, paper_sum, paper_risk):
    # From Table A's printed sum, 1 − S10^exp(sum − mean) reproduces Table A's printed risk exactly.
    assert round(ten_year_risk_percent(paper_sum, race, sex), 1) == paper_risk


@pytest.mark.parametrize(("race", "sex", "paper_sum", "paper_risk"), GOFF_TABLE_A)
def test_pce_worked_example_goff_table_a(race, sex, paper_sum, paper_risk):
    out = calculate("pce", dict(GOFF_EXAMPLE, race=race, sex=sex))
    # Within the last printed digit: Table A works from sums cut to 2 decimals. For the white man the exact
    # sum is 60.6995, giving 5.38 % → 5.4 where the paper's 60.69 gives 5.33 % → 5.3.
    assert round(abs(out["risk_10y_percent"] - paper_risk), 1) <= 0.1
    assert out["score"] == "pce" and "Goff" in out["citation"]


def test_pce_exact_outputs_for_goff_example():
    # Full-precision equation on the Table A example; three of four equal the paper's printed values.
    got = {(r, s): calculate("pce", dict(GOFF_EXAMPLE, race=r, sex=s))["risk_10y_percent"]
           for r, s, _, _ in GOFF_TABLE_A}
    assert got == {("white", "female"): 2.1, ("african_american", "female"): 3.0,
                   ("white", "male"): 5.4, ("african_american", "male"): 6.1}


@pytest.mark.parametrize("sex", ["female", "male"])
def test_pce_other_race_uses_white_equations(sex):
    # Goff 2013: the white equations are advised for races other than African-American.
    other = calculate("pce", dict(GOFF_EXAMPLE, race="other", sex=sex))
    white = calculate("pce", dict(GOFF_EXAMPLE, race="white", sex=sex))
    assert other["risk_10y_percent"] == white["risk_10y_percent"]


@pytest.mark.parametrize(("risk", "band"), [
    # 2018 AHA/ACC cholesterol / 2019 ACC/AHA primary prevention bands.
    (2.1, "low"), (4.9, "low"), (5.0, "borderline"), (7.4, "borderline"), (7.5, "intermediate"),
    (19.9, "intermediate"), (20.0, "high"), (45.0, "high"),
])
def test_pce_category_bands(risk, band):
    assert category(risk) == band


def test_pce_categories_on_real_profiles():
    assert calculate("pce", dict(GOFF_EXAMPLE, race="white", sex="female"))["category"] == "low"  # 2.1 %
    assert calculate("pce", dict(GOFF_EXAMPLE, race="african_american", sex="male"))["category"] == "borderline"
    high = calculate("pce", dict(GOFF_EXAMPLE, race="white", sex="male", age=70, systolic_bp=160, bp_treated=True,
                                 smoker=True, diabetes=True))
    assert high["risk_10y_percent"] >= 20 and high["category"] == "high"


def test_pce_treated_bp_raises_risk():
    base = dict(GOFF_EXAMPLE, race="white", sex="female", systolic_bp=140)
    assert (calculate("pce", dict(base, bp_treated=True))["risk_10y_percent"]
            > calculate("pce", base)["risk_10y_percent"])


# --- CHA₂DS₂-VASc / CHA₂DS₂-VA -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("inputs", "points"), [
    # Lip 2010 point table: C 1, H 1, A₂ (≥75) 2, D 1, S₂ 2, V 1, A (65–74) 1, Sc (female) 1.
    ({"age": 75, "sex": "female", "hypertension": True}, 4),
    ({"age": 66, "sex": "male", "diabetes": True}, 2),
    ({"age": 50, "sex": "male"}, 0),
    ({"age": 50, "sex": "female"}, 1),
    ({"age": 64, "sex": "male", "stroke_tia": True}, 2),
    ({"age": 65, "sex": "male"}, 1),
    ({"age": 74, "sex": "male"}, 1),
    (dict(ALL_AF_RISK, age=80, sex="female"), 9),
])
def test_cha2ds2vasc_points(inputs, points):
    assert calculate("cha2ds2vasc", dict(NO_AF_RISK, **inputs))["points"] == points


def test_cha2ds2va_never_counts_sex():
    assert calculate("cha2ds2va", dict(ALL_AF_RISK, age=80, sex="female"))["points"] == 8  # 2024 ESC: max 8
    assert calculate("cha2ds2va", dict(ALL_AF_RISK, age=80, sex="male"))["points"] == 8
    assert calculate("cha2ds2va", dict(NO_AF_RISK, age=75, sex="female", hypertension=True))["points"] == 3


@pytest.mark.parametrize(("points_inputs", "rate"), [
    # Friberg 2012 (Eur Heart J 33:1500), ischaemic stroke %/year without anticoagulation, by CHA₂DS₂-VASc score.
    ({"age": 50, "sex": "male"}, "0.2%"),
    ({"age": 50, "sex": "female"}, "0.6%"),
    ({"age": 66, "sex": "male", "diabetes": True}, "2.2%"),
    ({"age": 75, "sex": "female", "hypertension": True}, "4.8%"),
    (dict(ALL_AF_RISK, age=80, sex="female"), "12.2%"),
])
def test_cha2ds2vasc_annual_stroke_risk(points_inputs, rate):
    out = calculate("cha2ds2vasc", dict(NO_AF_RISK, **points_inputs))
    assert out["annual_stroke_risk"] == rate
    assert "Friberg" in out["citation"]


def test_cha2ds2va_rate_is_read_at_the_patients_cha2ds2vasc_score():
    # Friberg tabulates by CHA₂DS₂-VASc: a woman of 75 with hypertension is VASc 4 (4.8 %), VA 3.
    out = calculate("cha2ds2va", dict(NO_AF_RISK, age=75, sex="female", hypertension=True))
    assert (out["points"], out["annual_stroke_risk"]) == (3, "4.8%")


@pytest.mark.parametrize(("inputs", "start"), [
    # 2020 ESC: OAC recommended for CHA₂DS₂-VASc ≥2 (men) / ≥3 (women); considered for 1 (men) / 2 (women).
    ({"age": 50, "sex": "male"}, "Low risk"),
    ({"age": 50, "sex": "female"}, "Low risk"),  # the sex point alone does not call for anticoagulation
    ({"age": 66, "sex": "male"}, "Oral anticoagulation should be considered"),
    ({"age": 66, "sex": "female"}, "Oral anticoagulation should be considered"),
    ({"age": 66, "sex": "male", "diabetes": True}, "Oral anticoagulation is recommended"),
    ({"age": 75, "sex": "female"}, "Oral anticoagulation is recommended"),
])
def test_cha2ds2vasc_recommendation_esc_2020(inputs, start):
    assert calculate("cha2ds2vasc", dict(NO_AF_RISK, **inputs))["recommendation"].startswith(start)


@pytest.mark.parametrize(("inputs", "start"), [
    # 2024 ESC: OAC recommended for CHA₂DS₂-VA ≥2, considered for 1.
    ({"age": 50, "sex": "female"}, "No oral anticoagulation"),
    ({"age": 50, "sex": "male", "hypertension": True}, "Oral anticoagulation should be considered"),
    ({"age": 75, "sex": "male"}, "Oral anticoagulation is recommended"),
])
def test_cha2ds2va_recommendation_esc_2024(inputs, start):
    out = calculate("cha2ds2va", dict(NO_AF_RISK, **inputs))
    assert out["recommendation"].startswith(start)
    assert "2024 ESC" in out["citation"]


# --- HAS-BLED ------------------------------------------------------------------------------------------------------

def test_hasbled_elderly_point_is_over_65():
    # Pisters 2010: "Elderly" means age > 65.
    assert calculate("hasbled", dict(NO_BLEED_RISK, age=65))["points"] == 0
    assert calculate("hasbled", dict(NO_BLEED_RISK, age=66))["points"] == 1


def test_hasbled_max_9():
    everything = {k: True for k in NO_BLEED_RISK}
    assert calculate("hasbled", dict(everything, age=80))["points"] == 9


@pytest.mark.parametrize(("inputs", "points", "band"), [
    # Pisters 2010 (Chest 138:1093): bleeds per 100 patient-years by score; ≥3 is "high".
    ({"age": 50}, 0, "not high — 1.13 bleeds per 100 patient-years"),
    ({"age": 70}, 1, "not high — 1.02 bleeds per 100 patient-years"),
    ({"age": 70, "drugs": True}, 2, "not high — 1.88 bleeds per 100 patient-years"),
    ({"age": 70, "drugs": True, "alcohol": True}, 3, "high — 3.74 bleeds per 100 patient-years"),
    ({"age": 70, "drugs": True, "alcohol": True, "stroke": True}, 4, "high — 8.70 bleeds per 100 patient-years"),
    ({"age": 70, "drugs": True, "alcohol": True, "stroke": True, "bleeding": True}, 5,
     "high — 12.50 bleeds per 100 patient-years"),
])
def test_hasbled_points_and_band(inputs, points, band):
    out = calculate("hasbled", dict(NO_BLEED_RISK, **inputs))
    assert (out["points"], out["risk_band"]) == (points, band)


def test_hasbled_above_5_has_no_rate():
    out = calculate("hasbled", dict(NO_BLEED_RISK, age=70, drugs=True, alcohol=True, stroke=True, bleeding=True,
                                    labile_inr=True))
    assert out["points"] == 6 and out["risk_band"].startswith("high — no published rate")


# --- FINDRISC ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("inputs", "points"), [
    # Lindström & Tuomilehto 2003 point table.
    ({}, 0),
    ({"age": 45}, 2), ({"age": 54}, 2), ({"age": 55}, 3), ({"age": 64}, 3), ({"age": 65}, 4),
    ({"bmi": 25}, 1), ({"bmi": 30}, 1), ({"bmi": 30.1}, 3),
    ({"waist_cm": 80}, 3), ({"waist_cm": 88}, 3), ({"waist_cm": 89}, 4),  # women
    ({"sex": "male", "waist_cm": 93}, 0), ({"sex": "male", "waist_cm": 94}, 3),
    ({"sex": "male", "waist_cm": 102}, 3), ({"sex": "male", "waist_cm": 103}, 4),  # men
    ({"physical_activity": False}, 2), ({"daily_vegetables": False}, 1), ({"bp_medication": True}, 2),
    ({"high_glucose_history": True}, 5),
    ({"family_history": "second_degree"}, 3), ({"family_history": "first_degree"}, 5),
    # Worked combination: 58-year-old man, BMI 28, waist 98, inactive, vegetables daily, BP medication,
    # father with diabetes: 3 + 1 + 3 + 2 + 0 + 2 + 0 + 5 = 16.
    ({"age": 58, "sex": "male", "bmi": 28, "waist_cm": 98, "physical_activity": False, "bp_medication": True,
      "family_history": "first_degree"}, 16),
    # Everything at its worst: 4 + 3 + 4 + 2 + 1 + 2 + 5 + 5 = 26, the maximum.
    ({"age": 70, "bmi": 35, "waist_cm": 100, "physical_activity": False, "daily_vegetables": False,
      "bp_medication": True, "high_glucose_history": True, "family_history": "first_degree"}, 26),
])
def test_findrisc_points(inputs, points):
    assert calculate("findrisc", dict(FINDRISC_ZERO, **inputs))["points"] == points


@pytest.mark.parametrize(("inputs", "points", "band"), [
    # Lindström & Tuomilehto 2003 risk bands: <7, 7–11, 12–14, 15–20, >20.
    ({}, 0, "low — 1 in 100"),
    ({"bp_medication": True, "high_glucose_history": True}, 7, "slightly elevated — 1 in 25"),
    ({"high_glucose_history": True, "family_history": "first_degree", "physical_activity": False}, 12,
     "moderate — 1 in 6"),
    ({"age": 58, "sex": "male", "bmi": 28, "waist_cm": 98, "physical_activity": False, "bp_medication": True,
      "family_history": "first_degree"}, 16, "high — 1 in 3"),
    ({"age": 65, "high_glucose_history": True, "family_history": "first_degree", "bp_medication": True,
      "physical_activity": False, "daily_vegetables": False}, 19, "high — 1 in 3"),
    ({"age": 65, "bmi": 31, "waist_cm": 90, "high_glucose_history": True, "family_history": "first_degree"}, 21,
     "very high — 1 in 2"),
])
def test_findrisc_bands(inputs, points, band):
    out = calculate("findrisc", dict(FINDRISC_ZERO, **inputs))
    assert (out["points"], out["risk_band"]) == (points, band)


# --- refusals ------------------------------------------------------------------------------------------------------

def test_missing_field_is_named():
    inputs = dict(GOFF_EXAMPLE, race="white", sex="female")
    del inputs["hdl"]
    with pytest.raises(RiskInputError, match=r"^missing input for pce: hdl$"):
        calculate("pce", inputs)


def test_missing_none_is_named():
    with pytest.raises(RiskInputError, match=r"^missing input for hasbled: labile_inr$"):
        calculate("hasbled", dict(NO_BLEED_RISK, age=70, labile_inr=None))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("age", 39, "age 39 years is outside the validated range 40–79 years for pce"),
    ("age", 80, "age 80 years is outside the validated range 40–79 years for pce"),
    ("total_cholesterol", 340, "total_cholesterol 340 mg/dL is outside the validated range 130–320 mg/dL for pce"),
    ("hdl", 15, "hdl 15 mg/dL is outside the validated range 20–100 mg/dL for pce"),
    ("systolic_bp", 210, "systolic_bp 210 mmHg is outside the validated range 90–200 mmHg for pce"),
])
def test_pce_refuses_out_of_range_never_clamps(field, value, message):
    with pytest.raises(RiskInputError) as info:
        calculate("pce", dict(GOFF_EXAMPLE, race="white", sex="female", **{field: value}))
    assert str(info.value) == message


@pytest.mark.parametrize(("name", "inputs", "message"), [
    ("pce", dict(GOFF_EXAMPLE, race="white", sex="female", age="55"),
     "age must be a number for pce, got '55'"),
    ("pce", dict(GOFF_EXAMPLE, race="white", sex="female", smoker=1),
     "smoker must be true or false for pce, got 1"),
    ("pce", dict(GOFF_EXAMPLE, race="asian", sex="female"),
     "race must be one of white, african_american, other for pce, got 'asian'"),
    ("cha2ds2vasc", dict(NO_AF_RISK, age=True, sex="male"),
     "age must be a number for cha2ds2vasc, got True"),
    ("findrisc", dict(FINDRISC_ZERO, family_history="parent"),
     "family_history must be one of none, second_degree, first_degree for findrisc, got 'parent'"),
    ("hasbled", dict(NO_BLEED_RISK, age=17),
     "age 17 years is outside the validated range 18–120 years for hasbled"),
])
def test_wrong_type_or_choice_refused(name, inputs, message):
    with pytest.raises(RiskInputError) as info:
        calculate(name, inputs)
    assert str(info.value) == message


def test_unknown_score_refused():
    with pytest.raises(RiskInputError, match=r"unknown score 'qrisk'; available: cha2ds2va, cha2ds2vasc"):
        calculate("qrisk", {})
