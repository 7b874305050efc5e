"""HAS-BLED: 1-year major bleeding risk in atrial fibrillation (Euro Heart Survey)."""

from __future__ import annotations

from typing import Any

from medui.risk.base import Calculator, Field, register

# Pisters 2010: major bleeds per 100 patient-years by score. Scores above 5 are left out: the derivation cohort
# had too few such patients to give a rate worth showing.
_BLEEDS_PER_100_PATIENT_YEARS = (1.13, 1.02, 1.88, 3.74, 8.70, 12.50)

_ITEMS = ("hypertension", "abnormal_renal", "abnormal_liver", "stroke", "bleeding", "labile_inr", "drugs", "alcohol")


def _compute(v: dict[str, Any]) -> dict[str, Any]:
    points = sum(v[k] for k in _ITEMS) + (v["age"] > 65)  # "Elderly" is strictly over 65
    band = "high" if points >= 3 else "not high"
    if points < len(_BLEEDS_PER_100_PATIENT_YEARS):
        rate = f"{_BLEEDS_PER_100_PATIENT_YEARS[points]:.2f} bleeds per 100 patient-years"
    else:
        rate = "no published rate at this score (too few patients in the derivation cohort)"
    return {"points": points, "risk_band": f"{band} — {rate}"}


HASBLED = register(Calculator(
    name="hasbled",
    title="HAS-BLED major bleeding risk in atrial fibrillation",
    citation=(
        "Pisters R, Lane DA, Nieuwlaat R, de Vos CB, Crijns HJGM, Lip GYH. A novel user-friendly score (HAS-BLED) "
        "to assess 1-year risk of major bleeding in patients with atrial fibrillation: the Euro Heart Survey. "
        "Chest. 2010;138(5):1093–1100. doi:10.1378/chest.10-0134."
    ),
    fields=(
        Field("hypertension", "Hypertension (uncontrolled, systolic > 160 mmHg)", kind="bool"),
        Field("abnormal_renal", "Abnormal renal function (dialysis, transplant, creatinine ≥ 200 µmol/L)",
              kind="bool"),
        Field("abnormal_liver", "Abnormal liver function (cirrhosis, or bilirubin > 2× / AST/ALT > 3× normal)",
              kind="bool"),
        Field("stroke", "Prior stroke", kind="bool"),
        Field("bleeding", "Prior major bleeding or predisposition to bleeding", kind="bool"),
        Field("labile_inr", "Labile INR (time in therapeutic range < 60%)", kind="bool"),
        Field("age", "Age", low=18, high=120, unit="years", help="Scores a point when over 65."),
        Field("drugs", "Antiplatelet agents or NSAIDs", kind="bool"),
        Field("alcohol", "Alcohol use (≥ 8 drinks a week)", kind="bool"),
    ),
    compute=_compute,
    outputs=("points", "risk_band"),
))
