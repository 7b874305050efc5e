"""Drug normalisation (drug-named-entity-recognition) and medication rows linking dose, route and frequency."""

from __future__ import annotations

import re

import pytest

from medui.notes.drugs import normalise_drug, package_version
from medui.notes.medications import link_medications


def entities(text: str, spans: list[tuple[str, str]]) -> list[dict]:
    """Entity dicts for each (surface, label), found left to right in `text`."""
    found, cursor = [], 0
    for surface, label in spans:
        start = text.index(surface, cursor)
        found.append({"start": start, "end": start + len(surface), "text": surface, "label": label})
        cursor = start + len(surface)
    return found


@pytest.mark.parametrize(("text", "generic", "drugbank_id"), [
    ("Lasix", "furosemide", "DB00695"),
    ("LASIX.", "furosemide", "DB00695"),
    ("metformin", "metformin", "DB00331"),
    ("Metformin HCl,", "metformin", "DB00331"),
    ("Tylenol", "acetaminophen", "DB00316"),
    ("insulin glargine", "insulin glargine", "DB00047"),
    ("ASA", "aspirin", "DB00945"),
    ("lisinoprill", "lisinopril", "DB00722"),  # one typo: fuzzy match
    ("amoxicillin-clavulanate", "amoxicillin", "DB01060"),  # a combination: its first component
    ("thiamine", "thiamine", "DB00152"),  # a name the dictionary only has as "vitamin b1"
    ("lidocaine 5% patch", "lidocaine", "DB00281"),
])
def test_normalise_drug(text, generic, drugbank_id):
    drug = normalise_drug(text)
    assert drug is not None and (drug.generic, drug.drugbank_id) == (generic, drugbank_id)
    assert drug.matched.lower() in text.lower()


def test_mesh_id_and_matched_text():
    drug = normalise_drug("Lasix 40 mg")
    assert drug.mesh_id == "D049994" and drug.matched == "Lasix"


@pytest.mark.parametrize("text", ["chest pain", "Augmentn tabs", "", "!!!", "-", "500 mg", "fever",
                                  "hepatitis A and B vaccines"])  # several words fuzzy-matched without a crash
def test_non_drugs_are_none(text):
    assert normalise_drug(text) is None


def test_package_version():
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", package_version())


def test_acceptance_one_row():
    text = "Pt denies chest pain. Hx of T2DM on metformin 500 mg PO BID. Mother had breast cancer."
    ents = entities(text, [("chest pain", "PROBLEM"), ("T2DM", "PROBLEM"), ("metformin", "MEDICATION"),
                           ("500 mg", "DOSAGE"), ("PO", "ROUTE"), ("BID", "FREQUENCY"),
                           ("breast cancer", "PROBLEM")])
    (row,) = link_medications(text, ents)
    assert row.medication["text"] == "metformin"
    assert (row.dosage["text"], row.route["text"], row.frequency["text"]) == ("500 mg", "PO", "BID")
    assert row.code.generic == "metformin"
    as_dict = row.as_dict()
    assert as_dict["code"]["drugbank_id"] == "DB00331" and as_dict["dosage"]["start"] == text.index("500 mg")


def test_several_medications_on_a_line_and_attribute_before_the_drug():
    text = "Meds: lisinopril 10 mg daily and Lasix 40 mg PO BID; 81 mg aspirin nightly\r\nGive 2 mg IV morphine q4h PRN"
    ents = entities(text, [("lisinopril", "MEDICATION"), ("10 mg", "DOSAGE"), ("daily", "FREQUENCY"),
                           ("Lasix", "MEDICATION"), ("40 mg", "DOSAGE"), ("PO", "ROUTE"), ("BID", "FREQUENCY"),
                           ("81 mg", "DOSAGE"), ("aspirin", "MEDICATION"), ("nightly", "FREQUENCY"),
                           ("2 mg", "DOSAGE"), ("IV", "ROUTE"), ("morphine", "MEDICATION"), ("q4h PRN", "FREQUENCY")])
    rows = link_medications(text, list(reversed(ents)))  # input order does not matter
    summary = [(r.medication["text"], r.dosage and r.dosage["text"], r.route and r.route["text"],
                r.frequency and r.frequency["text"], r.code and r.code.generic) for r in rows]
    assert summary == [
        ("lisinopril", "10 mg", None, "daily", "lisinopril"),
        ("Lasix", "40 mg", "PO", "BID", "furosemide"),
        ("aspirin", "81 mg", None, "nightly", "aspirin"),
        ("morphine", "2 mg", "IV", "q4h PRN", "morphine"),
    ]


def test_attributes_do_not_cross_lines_or_sentences():
    text = "Started metformin.\n500 mg PO BID\nInsulin given. Daily weights."
    ents = entities(text, [("metformin", "MEDICATION"), ("500 mg", "DOSAGE"), ("PO", "ROUTE"), ("BID", "FREQUENCY"),
                           ("Insulin", "MEDICATION"), ("Daily", "FREQUENCY")])
    rows = link_medications(text, ents)
    assert [(r.dosage, r.route, r.frequency) for r in rows] == [(None, None, None), (None, None, None)]


def test_second_dose_goes_to_the_next_drug_and_no_medication_gives_no_rows():
    text = "metformin 500 mg 1000 mg"
    ents = entities(text, [("metformin", "MEDICATION"), ("500 mg", "DOSAGE"), ("1000 mg", "DOSAGE")])
    (row,) = link_medications(text, ents)
    assert row.dosage["text"] == "500 mg"
    assert link_medications("500 mg PO BID", entities("500 mg PO BID", [("500 mg", "DOSAGE")])) == []
    assert link_medications("", []) == []
