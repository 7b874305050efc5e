"""Records: searching stored notes results across notes and patients, opening one, and the admins' training export."""

from datetime import date, timedelta

import pytest

from medui import audit, auth, records
from medui.notes.corrections import reviewed, save_review

NOTES = {
    "bed-1": "Hx of T2DM on metformin 500 mg PO BID. No pneumonia.",
    "bed-2": "Rule out pneumonia. Started Glucophage.",
    "bed-3": "CXR shows pneumonia. <b>bold</b>",
}
TERMS = {  # words: (label, assertion, best code, code name)
    "T2DM": ("PROBLEM", "present", "E11.9", "Type 2 diabetes mellitus without complications"),
    "metformin": ("MEDICATION", None, "DB00331", "metformin"),
    "Glucophage": ("MEDICATION", None, "DB00331", "metformin"),
    "CXR": ("TEST", None, None, None),
}


def store(patient: str, text: str, by: str = "dr.a") -> int:
    entities = []
    for words, (label, assertion, code, name) in TERMS.items():
        if words in text:
            start = text.index(words)
            entities.append({"start": start, "end": start + len(words), "text": words, "label": label,
                             "assertion": assertion, "historical": False, "section": None,
                             "codes": [{"system": "x", "code": code, "display": name, "score": 1.0}] if code else []})
    start = text.index("pneumonia")
    assertion = "absent" if "No pneumonia" in text else "possible" if "Rule out" in text else "present"
    entities.append({"start": start, "end": start + 9, "text": "pneumonia", "label": "PROBLEM", "assertion": assertion,
                     "historical": False, "section": None,
                     "codes": [{"system": "ICD-10-CM", "code": "J18.9", "display": "Pneumonia, unspecified organism",
                                "score": 0.8}]})
    result = {"source": f"{patient}.txt", "text": text, "entities": sorted(entities, key=lambda e: e["start"]),
              "medications": [], "model": {"name": "notes-ner", "version": "1"}}
    return records.save_analysis("notes", result, created_by=by, input_sha256=records.input_hash(text.encode()),
                                 patient=patient, model_name="notes-ner", model_version="1")


@pytest.fixture
def stored():
    ids = {patient: store(patient, text) for patient, text in NOTES.items()}
    records.save_analysis("risk", {"entities": [{"text": "metformin"}]}, created_by="dr.a",
                          input_sha256="0" * 64, patient="bed-1")  # other kinds are not searched
    return ids


def test_patients_with_metformin_by_words_code_or_drug_name(stored):
    assert [(h.patient, h.text) for h in records.search_notes(words="METFORMIN")] == [
        ("bed-2", "Glucophage"), ("bed-1", "metformin")]  # the brand name matches through its generic name
    assert [h.patient for h in records.search_notes(words="e11")] == ["bed-1"]


def test_negated_pneumonia_and_other_filters(stored):
    negated = records.search_notes(words="pneumonia", assertions=("absent",))
    assert [(h.patient, h.assertion, h.code) for h in negated] == [("bed-1", "absent", "J18.9")]
    assert [h.patient for h in records.search_notes(words="pneumonia", assertions=("possible", "present"))] == [
        "bed-3", "bed-2"]
    assert [h.text for h in records.search_notes(labels=("TEST",))] == ["CXR"]
    assert [h.text for h in records.search_notes(patient=" bed-1 ", labels=("PROBLEM",))] == ["T2DM", "pneumonia"]
    assert len(records.search_notes(limit=2)) == 2


def test_dates_are_inclusive_days(stored):
    today = date.today()
    assert len(records.search_notes(words="pneumonia", since=today, until=today)) == 3
    assert records.search_notes(since=today + timedelta(days=1)) == []
    assert records.search_notes(until=today - timedelta(days=1)) == []


@pytest.fixture
def page(clinician_page, stored):
    return clinician_page("records.py")


def search(at, **fields):
    at.run()
    for key, value in fields.items():
        widget = at.multiselect(key=f"records_{key}") if key in ("labels", "assertions") else \
            at.text_input(key=f"records_{key}")
        widget.set_value(value)
    at.button[0].click().run()
    return at


def test_page_search_lists_hits_and_patients_and_is_audited(page):
    at = search(page, words="pneumonia", assertions=["absent"])
    assert not at.exception
    hits = at.dataframe[0].value
    assert list(hits["Patient"]) == ["bed-1"] and list(hits["Assertion"]) == ["absent"]
    assert at.markdown[0].value == "**1** mentions in **1** notes of **1** patients"
    event = audit.events(action="records_search")[0]
    assert event["actor"] == "dr.grey" and event["detail"] == {"hits": 1, "filters": ["assertions", "words"]}
    search(at, words="warfarin", assertions=[])
    assert at.info[0].value == "No stored note matches."


def test_opening_a_hit_shows_the_note_escaped_and_is_audited_once(page, stored):
    at = search(page, words="CXR")
    at.selectbox(key="records_open").set_value(stored["bed-3"]).run()
    body = at.get("html")[1].proto.body
    assert "&lt;b&gt;bold&lt;/b&gt;" in body and "<b>" not in body and ">CXR<sub" in body
    at.run()
    views = audit.events(action="analysis_view")
    assert len(views) == 1 and views[0]["patient"] == "bed-3"
    assert views[0]["detail"] == {"analysis_id": stored["bed-3"]}


def test_a_link_opens_the_analysis_and_review_works_there(page, stored):
    page.query_params["analysis"] = str(stored["bed-2"])
    at = page.run()
    assert at.subheader[0].value == f"Analysis {stored['bed-2']}"
    at.session_state[f"notes_review_{stored['bed-2']}"] = {
        "edited_rows": {0: {"assertion": "absent"}}, "added_rows": [], "deleted_rows": []}
    at.run()
    next(b for b in at.button if b.label == "Save corrections").click().run()
    assert [e["assertion"] for e in reviewed(stored["bed-2"]) if e["text"] == "pneumonia"] == ["absent"]


def test_unknown_analysis_is_a_message(page):
    page.query_params["analysis"] = "999"
    at = page.run()
    assert [e.value for e in at.error] == ["There is no stored notes analysis 999\\."]


def test_training_export_is_for_admins_only(page, stored):
    assert not [b for b in page.run().button if b.label == "Prepare the training file"]
    rows = [{k: e[k] for k in ("index", "status", "label", "assertion", "start", "end")}
            for e in reviewed(stored["bed-1"])]
    rows[0]["status"] = "accepted"
    save_review(stored["bed-1"], rows, actor="dr.grey")
    auth.create_user("ada.admin", "Correct-Horse-9", "admin", actor="test")
    page.session_state["medui_token"] = auth.start_session("ada.admin")
    at = page.run()
    next(b for b in at.button if b.label == "Prepare the training file").click().run()
    assert not at.exception
    assert audit.events(action="annotations_export")[0]["detail"] == {"notes": 1}
