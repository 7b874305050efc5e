"""Unlabelled context for the synthetic notes: text that looks clinical but names no entity under the annotation
guideline (tests/data/notes_dev/README.md), so the model learns what not to tag.

Written from general clinical documentation habits, not from the development notes: normal examination findings and
the body parts they mention, social history without a diagnosis, non-drug allergens, severity and time modifiers
that stay outside a PROBLEM span, and plan sentences that are management rather than procedures.
"""

from __future__ import annotations

import random

# Normal or descriptive exam findings by system; none of these is a PROBLEM.
NORMAL_EXAM: dict[str, tuple[str, ...]] = {
    "General": ("well-developed, well-nourished", "alert and oriented x3", "no acute distress", "comfortable at rest",
                "awake, cooperative", "appears stated age"),
    "HEENT": ("normocephalic, atraumatic", "PERRLA, EOMI", "pupils equal, round and reactive to light",
              "oropharynx clear", "moist mucous membranes", "tympanic membranes clear bilaterally", "sclerae anicteric",
              "conjunctivae pink", "neck supple", "trachea midline", "no lymphadenopathy appreciated"),
    "Heart": ("regular rate and rhythm", "RRR, normal S1 S2", "S1, S2 normal", "no rubs or gallops",
              "distal pulses 2+ and symmetric", "capillary refill < 2 seconds", "JVP not elevated"),
    "Lungs": ("clear to auscultation bilaterally", "CTAB", "lungs clear", "good air movement throughout",
              "breath sounds equal bilaterally", "scattered crackles at the bases", "faint bibasilar crackles",
              "rhonchi that clear with cough", "non-labored respirations", "symmetric chest rise"),
    "Abdomen": ("soft, non-tender, non-distended", "soft, NT/ND", "normoactive bowel sounds", "no guarding or rebound",
                "no hepatosplenomegaly", "mild tenderness in the right lower quadrant", "tender to palpation in the epigastrium",
                "bowel sounds present in all four quadrants"),
    "Extremities": ("warm and well perfused", "no clubbing or cyanosis", "full range of motion", "calves soft, non-tender",
                    "moves all extremities", "strength 5/5 in the upper and lower extremities"),
    "Skin": ("warm and dry", "intact, no lesions", "normal turgor", "no rashes noted on the trunk or arms"),
    "Neuro": ("CN II-XII intact", "sensation intact to light touch", "gait steady", "reflexes 2+ and symmetric",
              "speech fluent", "finger-to-nose intact", "no focal deficits"),
    "Psych": ("mood euthymic, affect congruent", "linear thought process", "good insight and judgment",
              "calm and cooperative"),
    "Back": ("no CVA tenderness", "no midline spinal tenderness", "paraspinal muscles non-tender"),
}

SOCIAL: tuple[str, ...] = (
    "Smokes 1 pack per day for 30 years. ", "Smokes half a pack a day. ", "Quit smoking 10 years ago. ",
    "Former smoker, 20 pack-years. ", "Never smoked. ", "Drinks 2 beers most nights. ", "Drinks a glass of wine with "
    "dinner. ", "Occasional alcohol, 1-2 drinks a week. ", "Social drinker. ", "No alcohol. ", "Denies drug use. ",
    "No recreational drugs. ", "Uses marijuana occasionally. ", "Vapes daily. ", "Lives with wife and two children. ",
    "Lives with husband. ", "Lives alone, independent in ADLs. ", "Lives in assisted living. ", "Works in construction. ",
    "Retired accountant. ", "Works night shifts as a nurse. ", "College student. ", "Walks 30 minutes most days. ",
    "Sedentary. ", "Married, has three grown children. ", "Drives. ", "Uses a cane at home. ",
    "Sexually active with one partner. ", "Drinks 3 cups of coffee a day. ", "Vegetarian diet. ",
)

# Environmental and food allergens: recorded in the allergy list but neither a medication nor a problem.
ALLERGENS: tuple[str, ...] = ("shellfish", "peanuts", "tree nuts", "latex", "bee stings", "seasonal pollen", "cats",
                              "dust mites", "eggs", "strawberries", "adhesive tape", "nickel")

# Severity, course and time words the guideline keeps outside a PROBLEM span.
MODIFIERS: tuple[str, ...] = ("mild ", "moderate ", "severe ", "worsening ", "intermittent ", "progressive ",
                              "new ", "persistent ", "painless ", "painful ", "occasional ", "constant ", "low-grade ",
                              "significant ", "recurrent ", "sudden ", "gradual ")

# Management that is neither a procedure nor a test.
PLAN: tuple[str, ...] = (
    "Follow up with PCP in 1-2 weeks. ", "Consult cardiology. ", "Appreciate nephrology recommendations. ",
    "Continue current management. ", "Diet as tolerated. ", "Encourage ambulation. ", "Fall precautions. ",
    "Counseled on smoking cessation. ", "Discussed plan with patient and family, who agree. ", "Full code. ",
    "DNR/DNI confirmed with patient. ", "Dispo: home when stable. ", "Case management for discharge planning. ",
    "Strict ins and outs. ", "Daily weights. ", "Advance diet. ", "Ice, rest and elevation. ", "Wound care per nursing. ",
    "Social work to see. ", "Educated on low-sodium diet. ", "Return to clinic in 3 months. ", "Refer to dietitian. ",
    "Telemetry monitoring. ", "Incentive spirometry. ", "Activity as tolerated. ", "Keep NPO after midnight. ",
)


def modifier(rng: random.Random, rate: float = 0.3) -> str:
    """A severity or course word to write before a PROBLEM (outside its span), or ""."""
    return rng.choice(MODIFIERS) if rng.random() < rate else ""


def exam_line(rng: random.Random, system: str) -> str:
    """One unlabelled exam line: "Abdomen: soft, NT/ND; no guarding or rebound."."""
    parts = rng.sample(NORMAL_EXAM[system], rng.randint(1, min(3, len(NORMAL_EXAM[system]))))
    return f"{system}: " + rng.choice((", ", "; ")).join(parts) + ". "
