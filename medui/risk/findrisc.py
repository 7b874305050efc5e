"""FINDRISC: the Finnish Diabetes Risk Score, 10-year risk of type 2 diabetes."""

from __future__ import annotations

from typing import Any

from medui.risk.base import Calculator, Field, register

# (upper bound inclusive, points). The published bands are "25–30 kg/m²", "94–102 cm": both ends inclusive.
_WAIST_CM = {"male": ((94, 0), (102, 3)), "female": ((80, 0), (88, 3))}
_FAMILY = {"none": 0, "second_degree": 3, "first_degree": 5}
# (lowest score in the band, name, published estimate of developing type 2 diabetes within 10 years)
_BANDS = ((21, "very high", "1 in 2"), (15, "high", "1 in 3"), (12, "moderate", "1 in 6"),
          (7, "slightly elevated", "1 in 25"), (0, "low", "1 in 100"))


def _age_points(age: float) -> int:
    # Bands are in completed years ("45–54"), so 54.9 still belongs to 45–54.
    return 0 if age < 45 else 2 if age < 55 else 3 if age < 65 else 4


def _bmi_points(bmi: float) -> int:
    return 0 if bmi < 25 else 1 if bmi <= 30 else 3


def _waist_points(waist: float, sex: str) -> int:
    (low, _), (high, mid_points) = _WAIST_CM[sex]
    return 0 if waist < low else mid_points if waist <= high else 4


def _compute(v: dict[str, Any]) -> dict[str, Any]:
    points = (_age_points(v["age"]) + _bmi_points(v["bmi"]) + _waist_points(v["waist_cm"], v["sex"])
              + (0 if v["physical_activity"] else 2) + (0 if v["daily_vegetables"] else 1)
              + 2 * v["bp_medication"] + 5 * v["high_glucose_history"] + _FAMILY[v["family_history"]])
    name, estimate = next((n, e) for lowest, n, e in _BANDS if points >= lowest)
    return {"points": points, "risk_band": f"{name} — {estimate}"}


FINDRISC = register(Calculator(
    name="findrisc",
    title="FINDRISC 10-year type 2 diabetes risk",
    citation=(
        "Lindström J, Tuomilehto J. The diabetes risk score: a practical tool to predict type 2 diabetes risk. "
        "Diabetes Care. 2003;26(3):725–731. doi:10.2337/diacare.26.3.725."
    ),
    fields=(
        # The questionnaire is for adults; BMI and waist bounds only refuse impossible entries.
        Field("age", "Age", low=18, high=120, unit="years"),
        Field("bmi", "Body-mass index", low=10, high=80, unit="kg/m²"),
        Field("waist_cm", "Waist circumference (at the navel)", low=40, high=250, unit="cm"),
        Field("sex", "Sex", kind="choice", choices=("female", "male"), help="Sets the waist-circumference bands."),
        Field("physical_activity", "At least 30 minutes of physical activity a day", kind="bool"),
        Field("daily_vegetables", "Eats vegetables, fruit or berries every day", kind="bool"),
        Field("bp_medication", "Ever taken medication for high blood pressure", kind="bool"),
        Field("high_glucose_history", "Ever found to have high blood glucose", kind="bool",
              help="In a health examination, during an illness, or during pregnancy."),
        Field("family_history", "Family member with diabetes", kind="choice",
              choices=("none", "second_degree", "first_degree"),
              help="second_degree: grandparent, aunt, uncle or first cousin; first_degree: parent, sibling or child."),
    ),
    compute=_compute,
    outputs=("points", "risk_band"),
))
