"""Corrections: stored as annotations on the saved analysis, audited, reflected in search, exported for training."""

import json

import pytest

from medui import audit, records
from medui.notes.corrections import CorrectionError, reviewed, save_review, training_jsonl
from medui.training.tasks.ner import _row_problem

TEXT = "Pt denies chest pain. Hx of T2DM on metformin 500 mg PO BID. Mother had breast cancer."


def entity(words: str, label: str, assertion: str | None = None, code: str | None = None):
    start = TEXT.index(words)
    return {"start": start, "end": start + len(words), "text": words, "label": label, "assertion": assertion,
            "historical": False, "section": None,
            "codes": [{"system": "ICD-10-CM", "code": code, "display": words, "score": 0.9}] if code else []}


def stored(patient: str = "bed-7") -> int:
    result = {"source": "note", "text": TEXT, "model": {"name": "notes-ner", "version": "1"}, "medications": [],
              "entities": [entity("chest pain", "PROBLEM", "absent", "R07.9"), entity("T2DM", "PROBLEM", "present",
                                                                                      "E11.9"),
                           entity("metformin", "MEDICATION", "present"), entity("500 mg", "DOSAGE"),
                           entity("breast cancer", "PROBLEM", "present", "C50.919")]}
    return records.save_analysis("notes", result, created_by="dr.a", input_sha256=records.input_hash(TEXT.encode()),
                                 patient=patient, model_name="notes-ner", model_version="1")


def table(analysis_id: int) -> list[dict]:
    """The review table as the editor hands it back, before any edit."""
    return [{k: e[k] for k in ("index", "status", "text", "label", "assertion", "start", "end")}
            for e in reviewed(analysis_id)]


def test_accept_reject_relabel_assertion_span_and_add_are_stored_and_audited():
    analysis_id = stored()
    rows = table(analysis_id)
    rows[0]["status"] = "accepted"
    rows[1]["start"] += 0  # untouched
    rows[2]["status"] = "rejected"
    rows[3]["label"] = "FREQUENCY"  # relabel
    rows[4]["assertion"] = "family"
    mother = TEXT.index("Mother")
    rows.append({"index": float("nan"), "status": "added", "label": "PROBLEM", "assertion": None,
                 "start": TEXT.index("chest"), "end": TEXT.index("chest") + 5})  # overlaps chest pain
    with pytest.raises(CorrectionError, match="overlap"):
        save_review(analysis_id, rows, actor="dr.b")
    rows[-1].update(label="PROCEDURE", start=mother, end=mother + 6, assertion="absent")  # nonsense, but theirs
    counts = save_review(analysis_id, rows, actor="dr.b")
    assert counts == {"accept": 1, "reject": 1, "correct": 2, "add": 1}
    after = {e["index"]: e for e in reviewed(analysis_id)}
    assert [after[i]["status"] for i in range(6)] == ["accepted", "unreviewed", "rejected", "corrected", "corrected",
                                                      "added"]
    assert after[3]["label"] == "FREQUENCY" and after[3]["codes"] == []  # relabelled: the old codes do not apply
    assert after[4]["assertion"] == "family" and after[4]["codes"][0]["code"] == "C50.919"  # same words, same code
    assert after[5]["text"] == "Mother" and after[5]["assertion"] is None  # a procedure carries no assertion
    event = audit.events(action="annotation")[0]
    assert event["actor"] == "dr.b" and event["patient"] == "bed-7"
    assert event["detail"] == {"analysis_id": analysis_id, "accept": 1, "reject": 1, "correct": 2, "add": 1}
    assert TEXT not in json.dumps(audit.events())  # identifiers and counts only
    assert save_review(analysis_id, table(analysis_id), actor="dr.b") == {
        "accept": 0, "reject": 0, "correct": 0, "add": 0}  # nothing changed, nothing stored
    assert len(audit.events(action="annotation")) == 1


def test_span_fix_and_deleted_row_and_unreject():
    analysis_id = stored()
    rows = table(analysis_id)
    rows[0]["start"] = TEXT.index("pain")  # "chest pain" -> "pain"
    del rows[1]  # deleting a row in the editor rejects the entity
    next(r for r in rows if r["text"] == "metformin")["assertion"] = "absent"  # "not on metformin"
    save_review(analysis_id, rows, actor="dr.b")
    after = reviewed(analysis_id)
    assert after[0]["text"] == "pain" and after[0]["status"] == "corrected"
    assert after[1]["status"] == "rejected"
    assert after[2]["assertion"] == "absent" and after[2]["status"] == "corrected"
    rows = table(analysis_id)
    rows[1]["status"] = "unreviewed"  # changed their mind
    assert save_review(analysis_id, rows, actor="dr.b")["accept"] == 1
    assert reviewed(analysis_id)[1]["status"] == "accepted"


@pytest.mark.parametrize("change, message", [
    ({"label": "DISEASE"}, "label must be one of PROBLEM"),
    ({"assertion": "maybe"}, "assertion must be one of present"),
    ({"end": len(TEXT) + 5}, "within the note's"),
    ({"start": 30, "end": 20}, "start before it ends"),
    ({"start": TEXT.index(". Hx") + 1, "end": TEXT.index(". Hx") + 2}, "blank space"),
    ({"start": "ten"}, "whole number"),
])
def test_bad_corrections_are_refused_in_words_and_nothing_is_stored(change, message):
    analysis_id = stored()
    rows = table(analysis_id)
    rows[0].update(change)
    with pytest.raises(CorrectionError, match=message):
        save_review(analysis_id, rows, actor="dr.b")
    assert all(e["status"] == "unreviewed" for e in reviewed(analysis_id))
    assert not audit.events(action="annotation")


def test_unknown_analysis_is_refused():
    with pytest.raises(CorrectionError, match="no stored notes analysis 99"):
        save_review(99, [], actor="dr.b")


def test_search_sees_corrections():
    analysis_id = stored()
    rows = table(analysis_id)
    rows[4]["assertion"] = "family"
    rows[2]["status"] = "rejected"
    save_review(analysis_id, rows, actor="dr.b")
    assert [h.text for h in records.search_notes(assertions=("family",))] == ["breast cancer"]
    assert records.search_notes(words="metformin") == []  # rejected by a clinician


def test_training_export_is_the_ner_span_format_of_reviewed_notes_only():
    reviewed_id, untouched_id = stored("bed-1"), stored("bed-2")
    rows = table(reviewed_id)
    rows[2]["status"] = "rejected"
    rows[4]["assertion"] = "family"
    save_review(reviewed_id, rows, actor="dr.b")
    data, count = training_jsonl("admin")
    lines = [json.loads(line) for line in data.splitlines()]
    assert count == 1 and len(lines) == 1  # the untouched note was never reviewed
    row = lines[0]
    assert _row_problem(row) is None  # what the ner training task accepts
    assert row["text"] == TEXT
    assert [(TEXT[e["start"]:e["end"]], e["label"], e.get("assertion")) for e in row["entities"]] == [
        ("chest pain", "PROBLEM", "absent"), ("T2DM", "PROBLEM", "present"), ("500 mg", "DOSAGE", None),
        ("breast cancer", "PROBLEM", "family")]
    assert audit.events(action="annotations_export")[0]["detail"] == {"notes": 1}
    assert untouched_id
