"""ConText-style assertion: each value, cue distances, terminators, lists, pseudo-negation and sections."""

from __future__ import annotations

import pytest

from medui.notes.assertion import MAX_GAP_WORDS, VALUES, assert_entity
from medui.notes.sections import find_sections, section_at


def check(text: str, mention: str, section: str | None = None, nth: int = 0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(mention, start + 1)
    if section is None:
        section = section_at(find_sections(text), start)
    return assert_entity(text, start, start + len(mention), section)


def test_acceptance_note():
    note = "Pt denies chest pain. Hx of T2DM on metformin 500 mg PO BID. Mother had breast cancer."
    chest_pain = check(note, "chest pain")
    assert (chest_pain.value, chest_pain.cue) == ("absent", "denies")
    diabetes = check(note, "T2DM")
    assert (diabetes.value, diabetes.historical, diabetes.cue) == ("present", True, "Hx of")
    assert check(note, "breast cancer").value == "family"


@pytest.mark.parametrize(("text", "mention", "value"), [
    ("Patient has pneumonia.", "pneumonia", "present"),
    ("No evidence of acute intracranial hemorrhage.", "hemorrhage", "absent"),
    ("MI was ruled out.", "MI", "absent"),
    ("Fever: no", "Fever", "absent"),
    ("Abdominal pain resolved", "Abdominal pain", "absent"),
    ("Rule out pulmonary embolism.", "pulmonary embolism", "possible"),
    ("Pneumonia is suspected.", "Pneumonia", "possible"),
    ("cannot rule out sepsis", "sepsis", "possible"),
    ("?PE", "PE", "possible"),
    ("CHF exacerbation vs pneumonia", "pneumonia", "possible"),
    ("Return to the ED if chest pain develops.", "chest pain", "hypothetical"),
    ("Call if fever.", "fever", "hypothetical"),
    ("Pt is at risk for falls", "falls", "hypothetical"),
    ("Breast cancer in her mother.", "Breast cancer", "family"),
    ("Mother with breast cancer", "breast cancer", "family"),
    ("Mother: breast cancer, HTN", "HTN", "family"),
])
def test_each_value(text, mention, value):
    assert value in VALUES
    assert check(text, mention).value == value


def test_distance_limit():
    near = "No " + "worsening " * MAX_GAP_WORDS + "fever"
    far = "No " + "worsening " * (MAX_GAP_WORDS + 1) + "fever"
    assert check(near, "fever").value == "absent"
    assert check(far, "fever").value == "present"
    assert check("She denies any recent history of significant chest pain", "chest pain").value == "absent"
    assert check("No fever and the patient was then started on lisinopril for hypertension",
                 "hypertension").value == "present"


def test_terminators_end_the_scope():
    assert check("No fever but reports cough.", "cough").value == "present"
    assert check("No fever; however has productive cough.", "cough").value == "present"
    assert check("Denies chest pain. Diabetes well controlled.", "Diabetes").value == "present"
    assert check("Denies chest pain\nHas diabetes", "diabetes").value == "present"
    assert check("Pt reports headache, denies photophobia", "headache").value == "present"


def test_list_scope_covers_every_item():
    text = "Denies fever, chills, nausea, vomiting or abdominal pain."
    for item in ("fever", "chills", "nausea", "vomiting", "abdominal pain"):
        assert check(text, item).value == "absent", item
    bullets = "ROS negative for:\n- fever\n- night sweats\n- weight loss"
    for item in ("fever", "night sweats", "weight loss"):
        assert check(bullets, item).value == "absent", item
    assert check("Negative for pneumonia, effusion and pneumothorax", "pneumothorax").value == "absent"


def test_longest_cue_and_pseudo_negation():
    assert check("No history of stroke", "stroke").value == "absent"
    assert check("No change in edema", "edema").value == "present"
    assert check("No significant change in the pleural effusion", "pleural effusion").value == "present"


def test_negation_beats_family_and_relatives_only_reach_as_labels():
    assert check("no family history of diabetes", "diabetes").value == "absent"
    assert check("Lives with son, has COPD", "COPD").value == "present"


def test_sections_inform_assertion():
    note = "PMH: HTN, DM\nFamily History:\nFather - CAD\nno colon cancer\nPlan: possible pneumonia"
    pmh = check(note, "DM")
    assert (pmh.value, pmh.historical) == ("present", True)
    cad = check(note, "CAD")
    assert (cad.value, cad.cue) == ("family", "section: Family history")
    assert check(note, "colon cancer").value == "absent"
    assert check(note, "pneumonia").value == "possible"
    assert check("Hypertension", "Hypertension", section="HPI").historical is False


def test_bad_span_is_refused():
    with pytest.raises(ValueError, match="outside the text"):
        assert_entity("fever", 3, 10)


@pytest.mark.parametrize(("text", "mention", "value"), [
    ("Go to the emergency room if you notice blood in your stool.", "blood in your stool", "hypothetical"),
    ("If the wound shows redness, come back.", "redness", "hypothetical"),
    ("Call the clinic for any rash or itching.", "itching", "hypothetical"),
    ("Enoxaparin 40 mg SC daily for DVT prophylaxis", "DVT", "hypothetical"),
    ("Fall risk - bed alarm on", "Fall", "hypothetical"),
    ("Mother to call for any fever", "fever", "hypothetical"),  # an instruction, not the mother's fever
    ("Consider sarcoidosis.", "sarcoidosis", "possible"),
    ("MRI to exclude epidural abscess.", "epidural abscess", "possible"),
    ("Accompanied by her son for dizziness.", "dizziness", "present"),  # the son brings her
])
def test_instructions_workup_and_companions(text, mention, value):
    assert check(text, mention).value == value


def test_uncertainty_after_a_comma_belongs_to_what_follows():
    text = "Sepsis from pneumonia, likely viral, improving"
    assert check(text, "Sepsis").value == "present"
    assert check(text, "pneumonia").value == "present"
    assert check("Pneumonia is suspected", "Pneumonia").value == "possible"
    assert check("fever and chills were denied", "fever").value == "absent"  # negation still reaches a list


def test_historical_is_the_patients_own_past():
    assert check("Hx of asthma", "asthma").historical is True
    assert check("Mother had breast cancer.", "breast cancer").historical is False  # the relative's past
    assert check("No history of stroke", "stroke").historical is False  # denied: no past either
    assert check("PSH: appendectomy, no anesthesia complications", "anesthesia complications").historical is False
    assert check("Allergies: penicillin - hives", "hives").historical is True  # a reaction that happened
