"""Weighted draws from the lexicon and the drug dictionary for the synthetic note generator."""

from __future__ import annotations

import bz2
import pickle
import random
import re
from functools import cache
from pathlib import Path

from medui.notes.lexicon import FREQUENCIES, MEDICATIONS, PROBLEMS, PROCEDURES, ROUTES, TESTS, Medication
from medui.notes.synth_doc import Ent

# Spelled and abbreviated frequencies most often seen in medication lists, drawn more often than the rest.
_COMMON_FREQ = ("daily", "BID", "TID", "QID", "qHS", "PRN", "q6h PRN", "twice daily", "once daily", "at bedtime",
                "as needed", "q8h", "q12h", "every 6 hours as needed", "three times a day", "weekly", "QD", "bid")
_COMMON_ROUTES = ("PO", "PO", "PO", "po", "by mouth", "IV", "orally", "SC", "subcutaneous", "inhaled", "SL")
_TAIL_NAME = re.compile(r"^[a-z][a-z\-]+( [a-z\-]+)?$")
# The first 60 curated medications are the most prescribed; they are drawn three times as often as the rest.
_MED_WEIGHTS = [3 if i < 60 else 1 for i in range(len(MEDICATIONS))]
_LONG_TAIL_SHARE = 0.12
_HEAD_PROBLEM_NAMES = (
    "essential hypertension", "type 2 diabetes mellitus", "hyperlipidemia", "coronary artery disease",
    "chronic obstructive pulmonary disease", "atrial fibrillation", "heart failure", "chronic kidney disease",
    "asthma", "gastroesophageal reflux disease", "hypothyroidism", "major depressive disorder", "obesity",
    "osteoarthritis", "chest pain", "shortness of breath", "fever", "cough", "nausea", "abdominal pain",
    "headache", "pneumonia", "urinary tract infection", "breast cancer", "acute myocardial infarction",
)
# Abbreviations clinicians write far more often than the spelled-out test (lexicon surface forms), drawn often.
_COMMON_TESTS = ("CBC", "BMP", "CMP", "INR", "PT/INR", "CXR", "ECG", "EKG", "TTE", "echo", "Hgb", "LFTs", "DEXA", "A1c",
                 "TSH", "UA", "BNP", "troponin", "lipid panel", "CT chest", "head CT", "chest X-ray", "urinalysis",
                 "PFTs", "ABG", "lactate", "blood cultures", "CT A/P", "MRI brain", "renal US", "eGFR", "WBC", "K",
                 "Cr", "BUN", "Na", "Mg", "Plt", "ESR", "CRP")
# Short upper-case problem forms ("HTN", "T2DM", "CHF"): drawn often enough that an abbreviation alone never means TEST.
_PROBLEM_ABBREVIATIONS = tuple(sorted({(p.canonical, s) for p in PROBLEMS.values() for s in p.synonyms
                                       if 2 <= len(s) <= 6 and sum(c.isupper() for c in s) >= 2}))
RELATIVES = ("mother", "father", "sister", "brother", "maternal grandmother", "paternal grandfather", "aunt",
             "uncle", "son", "daughter", "maternal uncle", "paternal aunt", "grandmother", "grandfather")


@cache
def drug_dictionary() -> dict:
    """The drug-named-entity-recognition dictionary (variant -> canonical, canonical -> data), read once.

    Read directly rather than through ``drugs_finder``, whose import also builds a trigram index we do not need.
    """
    import drug_named_entity_recognition

    path = Path(drug_named_entity_recognition.__file__).parent / "drug_ner_dictionary.pkl.bz2"
    with bz2.open(path, "rb") as handle:
        return pickle.load(handle)  # the package's own bundled file, loaded the way the package loads it


@cache
def long_tail_drugs() -> tuple[str, ...]:
    """Generic names from the drug dictionary that MedlinePlus covers (real drugs in use), one or two words, and
    that the dictionary's own name lookup resolves (a few canonical names such as "estradiol" are not variants)."""
    data = drug_dictionary()
    variants = data["drug_variant_to_canonical"]
    return tuple(sorted(name for name, info in data["drug_canonical_to_data"].items()
                        if info.get("medline_plus_id") and _TAIL_NAME.match(name) and "vaccine" not in name
                        and name in variants))


class Vocab:
    """Draws surface forms with realistic frequencies; one per note, seeded by the note's generator."""

    def __init__(self, rng: random.Random, tail: tuple[str, ...]) -> None:
        self.rng, self.tail = rng, tail
        self.problems = list(PROBLEMS.values())
        self.head = [PROBLEMS[name] for name in _HEAD_PROBLEM_NAMES]
        self.by_kind = {kind: [p for p in self.problems if p.kind == kind] for kind in ("disease", "symptom", "finding")}
        self.meds = list(MEDICATIONS.values())

    def _surface(self, canonical: str, synonyms: tuple[str, ...]) -> str:
        if synonyms and self.rng.random() < 0.6:
            return self.rng.choice(synonyms)
        return canonical

    def problem(self, assertion: str = "present", historical: bool = False, kind: str | None = None) -> Ent:
        """A PROBLEM; kind "disease", "symptom" or "finding" narrows it (symptoms for denied lists and ROS)."""
        if kind in (None, "disease") and self.rng.random() < 0.2:
            return Ent(self.rng.choice(_PROBLEM_ABBREVIATIONS)[1], "PROBLEM", assertion, historical)
        if kind is None and self.rng.random() < 0.3:
            chosen = self.rng.choice(self.head)
        else:
            chosen = self.rng.choice(self.by_kind[kind] if kind else self.problems)
        return Ent(self._surface(chosen.canonical, chosen.synonyms), "PROBLEM", assertion, historical)

    def problems_distinct(self, n: int, **kwargs) -> list[Ent]:
        out: list[Ent] = []
        while len(out) < n:
            ent = self.problem(**kwargs)
            if all(ent.surface.lower() != o.surface.lower() for o in out):
                out.append(ent)
        return out

    def medication(self) -> tuple[Ent, Medication | None]:
        """A MEDICATION surface (generic or brand) and its curated entry (None for a long-tail dictionary drug)."""
        if self.tail and self.rng.random() < _LONG_TAIL_SHARE:
            return Ent(self.rng.choice(self.tail), "MEDICATION"), None
        med = self.rng.choices(self.meds, weights=_MED_WEIGHTS)[0]
        name = self.rng.choice(med.brands) if med.brands and self.rng.random() < 0.3 else med.generic
        if self.rng.random() < 0.25:
            name = name[0].upper() + name[1:]
        return Ent(name, "MEDICATION"), med

    def dosage(self, med: Medication | None) -> Ent:
        if med and self.rng.random() < 0.85:
            dose = self.rng.choice(med.strengths)
        else:
            dose = f"{self.rng.choice((1, 2, 5, 10, 20, 25, 40, 50, 100, 200, 250, 500))} mg"
        if self.rng.random() < 0.15:
            dose = dose.replace(" ", "")
        return Ent(dose, "DOSAGE")

    def route(self, med: Medication | None) -> Ent:
        if med and self.rng.random() < 0.9:
            route = self.rng.choice(med.routes)
        else:
            route = self.rng.choice(_COMMON_ROUTES if self.rng.random() < 0.7 else tuple(ROUTES))
        return Ent(route, "ROUTE")

    def frequency(self) -> Ent:
        return Ent(self.rng.choice(_COMMON_FREQ if self.rng.random() < 0.7 else tuple(FREQUENCIES)), "FREQUENCY")

    def test(self, kind: str | None = None) -> Ent:
        if kind is None and self.rng.random() < 0.25:
            return Ent(self.rng.choice(_COMMON_TESTS), "TEST")
        terms = [t for t in TESTS.values() if kind is None or t.kind == kind]
        chosen = self.rng.choice(terms)
        # One- and two-letter forms ("T", "K", "Na") read as tests only inside a vitals or labs line.
        return Ent(self._surface(chosen.canonical, tuple(s for s in chosen.synonyms if len(s) > 2)), "TEST")

    def named_test(self, canonical: str) -> Ent:
        term = TESTS[canonical]
        return Ent(self._surface(term.canonical, term.synonyms), "TEST")

    def procedure(self) -> Ent:
        chosen = self.rng.choice(list(PROCEDURES.values()))
        return Ent(self._surface(chosen.canonical, chosen.synonyms), "PROCEDURE")

    def relative(self) -> str:
        return self.rng.choice(RELATIVES)
