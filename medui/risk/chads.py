"""CHA₂DS₂-VASc and its 2024 ESC successor CHA₂DS₂-VA: stroke risk in non-valvular atrial fibrillation."""

from __future__ import annotations

from typing import Any

from medui.risk.base import Calculator, Field, register

_LIP_2010 = (
    "Lip GYH, Nieuwlaat R, Pisters R, Lane DA, Crijns HJGM. Refining clinical risk stratification for predicting "
    "stroke and thromboembolism in atrial fibrillation using a novel risk factor-based approach: the Euro Heart "
    "Survey on Atrial Fibrillation. Chest. 2010;137(2):263–272. doi:10.1378/chest.09-1584."
)
_FRIBERG_2012 = (
    "Friberg L, Rosenqvist M, Lip GYH. Evaluation of risk stratification schemes for ischaemic stroke and bleeding "
    "in 182 678 patients with atrial fibrillation: the Swedish Atrial Fibrillation cohort study. Eur Heart J. "
    "2012;33(12):1500–1510. doi:10.1093/eurheartj/ehr488."
)
_ESC_2020 = (
    "Hindricks G, Potpara T, Dagres N, et al. 2020 ESC Guidelines for the diagnosis and management "
    "of atrial fibrillation developed in collaboration with the European Association for Cardio-Thoracic Surgery "
    "(EACTS). Eur Heart J. 2021;42(5):373–498. doi:10.1093/eurheartj/ehaa612."
)
_ESC_2024 = (
    "Van Gelder IC, Rienstra M, Bunting KV, et al. 2024 ESC Guidelines for the management of atrial fibrillation "
    "developed in collaboration with the European Association for Cardio-Thoracic Surgery (EACTS). Eur Heart J. "
    "2024;45(36):3314–3414. doi:10.1093/eurheartj/ehae176."
)

# Friberg 2012, ischaemic stroke %/year without anticoagulation, indexed by CHA₂DS₂-VASc score 0–9.
_ANNUAL_STROKE_PERCENT = (0.2, 0.6, 2.2, 3.2, 4.8, 7.2, 9.7, 11.2, 10.8, 12.2)

_FIELDS = (
    Field("age", "Age", low=18, high=120, unit="years"),
    Field("sex", "Sex", kind="choice", choices=("female", "male")),
    Field("chf", "Congestive heart failure or LV dysfunction", kind="bool"),
    Field("hypertension", "Hypertension", kind="bool"),
    Field("diabetes", "Diabetes mellitus", kind="bool"),
    Field("stroke_tia", "Prior stroke, TIA or thromboembolism", kind="bool"),
    Field("vascular_disease", "Vascular disease (prior MI, peripheral artery disease, aortic plaque)", kind="bool"),
)

_OAC_RECOMMENDED = "Oral anticoagulation is recommended (class I)."
_OAC_CONSIDER = ("Oral anticoagulation should be considered (class IIa), weighing the patient's bleeding risk "
                 "and preferences.")


def _points_without_sex(v: dict[str, Any]) -> int:
    age = 2 if v["age"] >= 75 else 1 if v["age"] >= 65 else 0
    return (age + v["chf"] + v["hypertension"] + v["diabetes"] + 2 * v["stroke_tia"]
            + v["vascular_disease"])


def _annual_risk(vasc_points: int) -> str:
    return f"{_ANNUAL_STROKE_PERCENT[vasc_points]}%"


def _compute_vasc(v: dict[str, Any]) -> dict[str, Any]:
    non_sex = _points_without_sex(v)
    points = non_sex + (v["sex"] == "female")
    # 2020 ESC thresholds count non-sex risk factors: female sex alone does not raise risk.
    if non_sex >= 2:
        recommendation = _OAC_RECOMMENDED
    elif non_sex == 1:
        recommendation = _OAC_CONSIDER
    else:
        recommendation = "Low risk: no antithrombotic therapy for stroke prevention."
    return {"points": points, "annual_stroke_risk": _annual_risk(points), "recommendation": recommendation}


def _compute_va(v: dict[str, Any]) -> dict[str, Any]:
    points = _points_without_sex(v)
    if points >= 2:
        recommendation = _OAC_RECOMMENDED
    elif points == 1:
        recommendation = _OAC_CONSIDER
    else:
        recommendation = ("No oral anticoagulation indicated by the score; reassess stroke risk periodically, "
                          "as risk factors accrue.")
    # Friberg's rates are tabulated by CHA₂DS₂-VASc, so look up the patient's CHA₂DS₂-VASc score (hence `sex`
    # stays an input) rather than misread a CHA₂DS₂-VA score as one.
    vasc_points = points + (v["sex"] == "female")
    return {"points": points, "annual_stroke_risk": _annual_risk(vasc_points), "recommendation": recommendation}


CHA2DS2VASC = register(Calculator(
    name="cha2ds2vasc",
    title="CHA₂DS₂-VASc stroke risk in atrial fibrillation",
    citation=(f"{_LIP_2010} Annual stroke risk: ischaemic stroke rate per year without anticoagulation by score, "
              f"from {_FRIBERG_2012} Recommendation: {_ESC_2020}"),
    fields=_FIELDS,
    compute=_compute_vasc,
    outputs=("points", "annual_stroke_risk", "recommendation"),
))

CHA2DS2VA = register(Calculator(
    name="cha2ds2va",
    title="CHA₂DS₂-VA stroke risk in atrial fibrillation (2024 ESC, no sex point)",
    citation=(f"{_ESC_2024} Derived from CHA₂DS₂-VASc: {_LIP_2010} Annual stroke risk: ischaemic stroke rate per "
              f"year without anticoagulation at the patient's CHA₂DS₂-VASc score, from {_FRIBERG_2012}"),
    fields=_FIELDS,
    compute=_compute_va,
    outputs=("points", "annual_stroke_risk", "recommendation"),
))
