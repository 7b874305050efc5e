"""Notes exports: CSV cells a spreadsheet would execute are neutralised; the FHIR Bundle validates as R4 and maps
assertions to verification status, family history to FamilyMemberHistory, medications to MedicationStatement."""

import csv
import io
import json

from fhir.resources.R4B.bundle import Bundle

from medui.notes.export import entities_csv, fhir_bundle, medications_csv, relative, safe_cell, to_json

TEXT = ("Pt denies chest pain. Hx of T2DM on metformin 500 mg PO BID. Rule out pneumonia. "
        "Mother had breast cancer. Return if fever develops. No longer on aspirin.")


def entity(words: str, label: str, assertion: str | None = None, codes: tuple = (), historical: bool = False):
    start = TEXT.index(words)
    return {"start": start, "end": start + len(words), "text": words, "label": label, "assertion": assertion,
            "historical": historical, "section": "HPI", "codes": [
                {"system": s, "code": c, "display": d, "score": 0.9} for s, c, d in codes]}


RESULT = {
    "source": "note-1", "text": TEXT, "patient": "bed-7", "model": {"name": "notes-ner", "version": "1"},
    "entities": [
        entity("chest pain", "PROBLEM", "absent", [("ICD-10-CM", "R07.9", "Chest pain, unspecified")]),
        entity("T2DM", "PROBLEM", "present", [("ICD-10-CM", "E11.9", "Type 2 diabetes mellitus"),
                                              ("ICD-10-CM", "E11.8", "with complications")], historical=True),
        entity("metformin", "MEDICATION", codes=[("DrugBank", "DB00331", "metformin")]),
        entity("pneumonia", "PROBLEM", "possible", [("ICD-10-CM", "J18.9", "Pneumonia, unspecified organism")]),
        entity("breast cancer", "PROBLEM", "family", [("ICD-10-CM", "C50.919", "Malignant neoplasm of breast")]),
        entity("fever", "PROBLEM", "hypothetical", [("ICD-10-CM", "R50.9", "Fever, unspecified")]),
    ],
    "medications": [  # the extractor's rows: the entities themselves and the normalised drug
        {"medication": entity("metformin", "MEDICATION"), "dosage": entity("500 mg", "DOSAGE"),
         "route": entity("PO", "ROUTE"), "frequency": entity("BID", "FREQUENCY"),
         "code": {"generic": "metformin", "drugbank_id": "DB00331", "mesh_id": "D008687", "matched": "metformin"}},
        {"medication": entity("aspirin", "MEDICATION", "absent"), "dosage": None, "route": None, "frequency": None,
         "code": None},
    ],
}


def resources(bundle_json: str, kind: str) -> list[dict]:
    return [e["resource"] for e in json.loads(bundle_json)["entry"] if e["resource"]["resourceType"] == kind]


def test_formula_cells_are_neutralised_and_other_cells_kept():
    assert [safe_cell(v) for v in ("=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tcmd", "metformin", 12)] == [
        "'=HYPERLINK(\"x\")", "'+1", "'-2+3", "'@SUM(A1)", "'\tcmd", "metformin", 12]
    hostile = {**RESULT, "source": "=cmd|' /C calc'!A0", "entities": [
        {**RESULT["entities"][0], "text": "@SUM(1+1)*cmd", "section": "+HPI"}]}
    rows = list(csv.DictReader(io.StringIO(entities_csv([hostile]))))
    assert rows[0]["source"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["text"] == "'@SUM(1+1)*cmd" and rows[0]["section"] == "'+HPI"
    assert rows[0]["code"] == "R07.9" and rows[0]["assertion"] == "absent"


def test_entity_and_medication_csv_have_one_row_each_with_the_best_code():
    rows = list(csv.DictReader(io.StringIO(entities_csv([RESULT]))))
    assert [(r["text"], r["code"]) for r in rows][:2] == [("chest pain", "R07.9"), ("T2DM", "E11.9")]
    meds = list(csv.DictReader(io.StringIO(medications_csv([RESULT]))))
    assert [(m["medication"], m["dosage"], m["route"], m["frequency"], m["drugbank"], m["mesh"]) for m in meds] == [
        ("metformin", "500 mg", "PO", "BID", "DB00331", "D008687"), ("aspirin", "", "", "", "", "")]


def test_json_export_is_the_cli_shape_without_the_note_text():
    exported = json.loads(to_json([RESULT]))
    assert "text" not in exported[0] and exported[0]["entities"] == RESULT["entities"]


def test_fhir_bundle_validates_as_r4_and_maps_assertions():
    bundle_json = fhir_bundle([RESULT], "bed-7")
    bundle = Bundle.model_validate_json(bundle_json)
    assert bundle.type == "collection"
    conditions = {c["code"]["text"]: c for c in resources(bundle_json, "Condition")}
    status = {text: c["verificationStatus"]["coding"][0]["code"] for text, c in conditions.items()}
    assert status == {"chest pain": "refuted", "T2DM": "confirmed", "pneumonia": "unconfirmed"}
    assert conditions["T2DM"]["code"]["coding"] == [  # the best candidate only, not every ranked guess
        {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9", "display": "Type 2 diabetes mellitus"}]
    assert "historical" in conditions["T2DM"]["note"][0]["text"]
    patient = resources(bundle_json, "Patient")[0]
    assert patient["identifier"][0]["value"] == "bed-7"
    assert all(c["subject"]["reference"] == bundle.entry[0].fullUrl for c in conditions.values())


def test_family_history_and_medications_map_to_their_own_resources():
    bundle_json = fhir_bundle([RESULT], "bed-7")
    family = resources(bundle_json, "FamilyMemberHistory")
    assert len(family) == 1 and family[0]["relationship"]["coding"][0]["code"] == "MTH"
    assert family[0]["condition"][0]["code"]["coding"][0]["code"] == "C50.919"
    statements = resources(bundle_json, "MedicationStatement")
    metformin, aspirin = statements
    assert metformin["status"] == "active" and metformin["dosage"][0]["text"] == "500 mg PO BID"
    assert metformin["dosage"][0]["route"]["text"] == "PO"
    assert [c["code"] for c in metformin["medicationCodeableConcept"]["coding"]] == ["DB00331", "D008687"]
    assert aspirin["status"] == "not-taken" and "dosage" not in aspirin
    texts = [c["code"]["text"] for c in resources(bundle_json, "Condition")]
    assert "fever" not in texts and "breast cancer" not in texts  # hypothetical and family: not this patient's


def test_bundle_is_the_same_for_the_same_results():
    assert fhir_bundle([RESULT], "bed-7") == fhir_bundle([RESULT], "bed-7")
    twice = json.loads(fhir_bundle([RESULT, RESULT], "bed-7"))["entry"]
    assert len({e["fullUrl"] for e in twice}) == len(twice)  # two notes with one source name do not collide


def test_relative_is_the_nearest_one_in_the_sentence():
    text = "Father: MI at 50. Her maternal aunt had ovarian cancer; brother well."
    assert relative(text, text.index("MI"), text.index("MI") + 2) == ("FTH", "father")
    start = text.index("ovarian")
    assert relative(text, start, start + 14) == ("AUNT", "aunt")
    assert relative("FHx: diabetes.", 5, 13) == ("FAMMEMB", "family member")
