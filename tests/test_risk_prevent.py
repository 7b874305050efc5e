"""AHA PREVENT base model against published worked examples and the reference implementations' own test data.

Sources of the expected values (each cited again beside its numbers):
  [S25]      Khan et al., Circulation 2024, Supplemental Table S25 worked example: female, 50 y, TC 200, HDL 45,
             SBP 160 on treatment, diabetes, non-smoker, no statin, eGFR 90, BMI 35.
  [preventr] martingmayer/preventr tests/testthat/test-prevent_equations.R ("Base model works, female" /
             "Base model works, male": the S25 inputs, all five outcomes, 10 and 30 years, risk to 3 decimals)
             and tests/testthat/_snaps/estimate_risk.md ("BP treatment validation works": the same inputs with
             bp_tx = FALSE, 10-year, shown as percent to 1 decimal).
  [AHAprevent] output of AHAprevent::pred_risk_base, the PREVENT authors' R package, as recorded in
             kingrc15/pyprevent tests/fixtures/r_reference.csv (inputs in tests/fixtures/r_cases.csv);
             total CVD, ASCVD and heart failure only, full precision, in percent.
"""

from __future__ import annotations

import pytest

from medui.risk import calculate, prevent
from medui.risk.base import CALCULATORS, RiskInputError

OUTCOMES = ("cvd", "ascvd", "hf", "chd", "stroke")

# [S25] inputs, in this calculator's keys.
S25 = {
    "age": 50,
    "sex": "female",
    "total_cholesterol": 200,
    "hdl": 45,
    "systolic_bp": 160,
    "bp_treated": True,
    "statin": False,
    "diabetes": True,
    "smoker": False,
    "egfr": 90,
    "bmi": 35,
}


def _case(sex, age, tc, hdl, sbp, dm, smoker, bmi, egfr, bp_treated, statin):
    """Build inputs in the column order of [AHAprevent]'s r_cases.csv."""
    return {
        "age": age,
        "sex": sex,
        "total_cholesterol": tc,
        "hdl": hdl,
        "systolic_bp": sbp,
        "diabetes": bool(dm),
        "smoker": bool(smoker),
        "bmi": bmi,
        "egfr": egfr,
        "bp_treated": bool(bp_treated),
        "statin": bool(statin),
    }


def _run(inputs):
    return CALCULATORS["prevent"].run(inputs)


# ---- [preventr]: all five outcomes, both horizons, female and male ------------------------------------------

# Risk as a fraction, 3 decimals, exactly as preventr's test suite asserts it, in the order cvd, ascvd, hf, chd, stroke.
PREVENTR_S25 = [
    # [preventr] test-prevent_equations.R, "Base model works, female": risk_est_10yr / risk_est_30yr
    ("female", 10, (0.147, 0.092, 0.081, 0.044, 0.054)),
    ("female", 30, (0.53, 0.354, 0.39, 0.198, 0.221)),
    # [preventr] test-prevent_equations.R, "Base model works, male": risk_est_10yr / risk_est_30yr
    ("male", 10, (0.163, 0.102, 0.106, 0.056, 0.052)),
    ("male", 30, (0.514, 0.349, 0.424, 0.216, 0.197)),
]


@pytest.mark.parametrize(("sex", "horizon", "expected"), PREVENTR_S25)
def test_s25_vignette_matches_preventr_for_all_five_outcomes(sex, horizon, expected):
    out = _run({**S25, "sex": sex})
    for outcome, fraction in zip(OUTCOMES, expected):
        # preventr shows the risk to 3 decimals of a fraction; our output is the same number in percent to 1 decimal.
        assert out[f"{outcome}_{horizon}y_percent"] == pytest.approx(100 * fraction, abs=1e-9), outcome
    assert out["notes"] == []


def test_s25_total_cvd_is_14_7_percent():
    # [S25] / [preventr]: the supplement's worked example has 10-year total CVD 14.7% (0.147) - note the
    # example person has diabetes.
    assert _run(S25)["cvd_10y_percent"] == 14.7


@pytest.mark.parametrize(
    ("sex", "expected_percent"),
    [
        # [preventr] _snaps/estimate_risk.md, "BP treatment validation works", bp_tx FALSE: female column
        ("female", (12.2, 7.9, 6.7, 4.1, 4.3)),
        # [preventr] _snaps/estimate_risk.md, "BP treatment validation works", bp_tx FALSE: male column
        ("male", (13.6, 8.9, 8.7, 5.2, 4.1)),
    ],
)
def test_untreated_blood_pressure_matches_preventr_snapshot(sex, expected_percent):
    out = _run({**S25, "sex": sex, "bp_treated": False})
    for outcome, percent in zip(OUTCOMES, expected_percent):
        assert out[f"{outcome}_10y_percent"] == pytest.approx(percent, abs=1e-9), outcome


# ---- [AHAprevent]: full-precision total CVD, ASCVD and HF over varied inputs ---------------------------------

AHAPREVENT_CASES = [
    # [AHAprevent] r_cases.csv "vignette_base_female_45" -> r_reference.csv PREVENT10/30_{CVD,ASCVD,HF}_BASE_PCT
    (
        _case("female", 45, 200, 60, 120, 1, 0, 25, 95, 0, 0),
        {
            "cvd_10y": 3.37940958559732,
            "ascvd_10y": 2.10197806318443,
            "hf_10y": 1.69813841006346,
            "cvd_30y": 20.649964963609,
            "ascvd_30y": 11.9961361012451,
            "hf_30y": 12.7944685124708,
        },
    ),
    # [AHAprevent] "tables25_female_50" (the [S25] example)
    (
        _case("female", 50, 200, 45, 160, 1, 0, 35, 90, 1, 0),
        {
            "cvd_10y": 14.6839372164812,
            "ascvd_10y": 9.19508975363287,
            "hf_10y": 8.05609677791426,
            "cvd_30y": 52.9850387063578,
            "ascvd_30y": 35.4255198869041,
            "hf_30y": 38.9602267110663,
        },
    ),
    # [AHAprevent] "preventr_base_male_66" (30-year columns empty: age over 59)
    (
        _case("male", 66, 188, 52, 148, 1, 1, 30, 67, 0, 1),
        {
            "cvd_10y": 22.4155711977015,
            "ascvd_10y": 14.2049700817931,
            "hf_10y": 13.7948077945273,
            "cvd_30y": None,
            "ascvd_30y": None,
            "hf_30y": None,
        },
    ),
    # [AHAprevent] "preventr_full_female_66_missing_sdi", base-model columns (30-year columns empty)
    (
        _case("female", 66, 188, 52, 148, 1, 1, 30, 67, 0, 1),
        {
            "cvd_10y": 21.677565980195,
            "ascvd_10y": 13.5243589501577,
            "hf_10y": 12.8594983239187,
            "cvd_30y": None,
            "ascvd_30y": None,
            "hf_30y": None,
        },
    ),
    # [AHAprevent] "vignette_uacr_male_75", base-model columns (30-year columns empty)
    (
        _case("male", 75, 240, 90, 130, 0, 0, 30, 105, 1, 1),
        {
            "cvd_10y": 18.1662515298969,
            "ascvd_10y": 10.5942427184478,
            "hf_10y": 12.7023425493465,
            "cvd_30y": None,
            "ascvd_30y": None,
            "hf_30y": None,
        },
    ),
]


@pytest.mark.parametrize(("inputs", "expected"), AHAPREVENT_CASES)
def test_unrounded_risks_match_the_authors_r_package(inputs, expected):
    risks = prevent.risks(inputs)
    for key, percent in expected.items():
        got = risks[f"{key}_percent"]
        if percent is None:
            assert got is None, key
        else:
            # AHAprevent codes the female total-CVD "SBP >=110" beta as 0.360078 where Table S12A prints 0.3600781;
            # that moves female total CVD by <2e-6 percentage points, everything else agrees to ~1e-13.
            assert 100 * got == pytest.approx(percent, abs=1e-5), key


@pytest.mark.parametrize(("inputs", "expected"), AHAPREVENT_CASES)
def test_displayed_risks_are_the_reference_rounded_to_one_decimal(inputs, expected):
    out = _run(inputs)
    for key, percent in expected.items():
        if percent is None:
            assert out[f"{key}_percent"] is None, key
        else:
            assert out[f"{key}_percent"] == pytest.approx(round(percent, 1), abs=1e-9), key


# ---- 30-year horizon only for ages 30-59 --------------------------------------------------------------------


def test_30_year_keys_are_null_at_age_65_with_a_note():
    out = _run({**S25, "age": 65})
    for outcome in OUTCOMES:
        assert out[f"{outcome}_30y_percent"] is None
        assert isinstance(out[f"{outcome}_10y_percent"], float)
    assert len(out["notes"]) == 1
    assert "30-year" in out["notes"][0] and "65" in out["notes"][0] and "30-59" in out["notes"][0]


def test_30_year_estimates_stop_exactly_at_60():
    assert _run({**S25, "age": 59})["cvd_30y_percent"] is not None
    assert _run({**S25, "age": 60})["cvd_30y_percent"] is None


# ---- refusals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("egfr", [14, 141])
def test_out_of_range_egfr_is_refused(egfr):
    with pytest.raises(RiskInputError) as err:
        _run({**S25, "egfr": egfr})
    assert str(err.value) == (
        f"egfr {egfr} mL/min/1.73m² is outside the validated range 15–140 mL/min/1.73m² for prevent"
    )


def test_missing_bmi_is_refused():
    inputs = dict(S25)
    del inputs["bmi"]
    with pytest.raises(RiskInputError) as err:
        _run(inputs)
    assert str(err.value) == "missing input for prevent: bmi"


@pytest.mark.parametrize(
    ("field", "value"),
    [("age", 29), ("age", 80), ("total_cholesterol", 321), ("hdl", 19), ("systolic_bp", 181), ("bmi", 40)],
)
def test_other_published_ranges_are_enforced(field, value):
    with pytest.raises(RiskInputError, match=f"^{field} .* outside the validated range"):
        _run({**S25, field: value})


# ---- wiring and table shape ----------------------------------------------------------------------------------


def test_registered_and_reachable_through_calculate():
    out = calculate("prevent", S25)
    assert out["score"] == "prevent"
    assert "CIRCULATIONAHA.123.067626" in out["citation"]
    assert set(CALCULATORS["prevent"].outputs) <= set(out)


def test_every_model_is_present_and_bmi_enters_heart_failure_only():
    for horizon in (10, 30):
        for sex in ("female", "male"):
            for outcome in OUTCOMES:
                betas = prevent.COEFFICIENTS[horizon][(sex, outcome)]
                assert ("age_squared" in betas) == (horizon == 30)
                uses_bmi = any(betas[t] != 0.0 for t in ("bmi_lt_30", "bmi_ge_30", "age_x_bmi_ge_30"))
                assert uses_bmi == (outcome == "hf"), (horizon, sex, outcome)
