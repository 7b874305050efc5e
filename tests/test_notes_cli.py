"""`python -m medui notes`: JSON shape, error objects in place with exit 1, batch files, --save, `notes synth`."""

from __future__ import annotations

import json

import pytest

from medui import records

ACCEPTANCE = "Pt denies chest pain. Hx of T2DM on metformin 500 mg PO BID. Mother had breast cancer."
RESULT_KEYS = {"source", "entities", "medications", "model", "vocabularies", "chars_total", "chars_processed"}
ENTITY_KEYS = {"start", "end", "text", "label", "assertion", "historical", "section", "codes"}


@pytest.fixture
def note(tmp_path):
    path = tmp_path / "acceptance.txt"
    path.write_text(ACCEPTANCE, encoding="utf-8")
    return path


@pytest.mark.slow
def test_json_is_one_object_per_document_in_the_documented_shape(cli, note):
    code, out, err = cli("notes", str(note), "--json")
    assert code == 0, err
    [result] = json.loads(out)
    assert set(result) == RESULT_KEYS and result["source"] == str(note)
    assert result["model"] == {"name": "notes-ner", "version": "1"}
    for entity in result["entities"]:
        assert set(entity) == ENTITY_KEYS
        for c in entity["codes"]:
            assert set(c) == {"system", "code", "display", "score"}
    problems = {e["text"]: e for e in result["entities"] if e["label"] == "PROBLEM"}
    assert problems["chest pain"]["assertion"] == "absent"
    assert problems["T2DM"]["codes"][0]["code"].startswith("E11")
    assert [m["medication"]["text"] for m in result["medications"]] == ["metformin"]
    code, text_out, _ = cli("notes", str(note))
    assert code == 0 and "absent" in text_out and "E11" in text_out


@pytest.mark.slow
def test_unreadable_files_become_error_objects_in_place_and_exit_1(cli, note, tmp_path):
    binary, latin1, empty = tmp_path / "scan.txt", tmp_path / "latin1.txt", tmp_path / "empty.txt"
    binary.write_bytes(b"\x00\x01\x02binary\x00" * 10)
    latin1.write_bytes("Caf\xe9 au lait spots. Denies fever.".encode("latin-1"))
    empty.write_bytes(b"")
    paths = [str(binary), str(note), str(latin1), str(empty), str(tmp_path / "missing.txt")]
    code, out, err = cli("notes", *paths, "--json")
    assert code == 1
    results = json.loads(out)
    assert [r["source"] for r in results] == paths
    assert "entities" in results[1]
    for r in results[:1] + results[2:]:
        assert set(r) == {"source", "error"}
    assert "binary" in results[0]["error"] or "NUL" in results[0]["error"]
    assert "--decode-errors replace" in results[2]["error"]
    assert "empty" in results[3]["error"] and "No such file" in results[4]["error"]
    assert err.count("error: ") == 4

    code, out, _ = cli("notes", str(latin1), "--json", "--decode-errors", "replace")
    [result] = json.loads(out)
    assert code == 0 and result["chars_total"] == len("Caf\ufffd au lait spots. Denies fever.")


@pytest.mark.slow
def test_batch_files_give_one_result_per_row(cli, tmp_path):
    jsonl, table = tmp_path / "notes.jsonl", tmp_path / "notes.csv"
    jsonl.write_text(json.dumps({"text": ACCEPTANCE}) + "\nnot json\n" + json.dumps({"text": "Denies fever."}) + "\n",
                     encoding="utf-8")
    table.write_text('id,text\nn1,"Started lisinopril 10 mg daily."\n', encoding="utf-8")
    code, out, _ = cli("notes", str(jsonl), str(table), "--json")
    results = json.loads(out)
    assert code == 1 and len(results) == 4
    assert "error" in results[1] and "not valid JSON" in results[1]["error"]
    assert results[3]["source"] == "n1" and results[3]["medications"][0]["code"]["generic"] == "lisinopril"


@pytest.mark.slow
def test_save_stores_each_result_for_the_patient(cli, note):
    code, out, err = cli("notes", str(note), "--json", "--save", "--patient", "MRN-7")
    assert code == 0 and "saved" in err
    stored = records.latest_for_patient("MRN-7", "notes")
    assert stored is not None and stored.model == "notes-ner v1"
    assert stored.result["entities"] == json.loads(out)[0]["entities"] and stored.result["text"] == ACCEPTANCE


def test_save_without_patient_and_missing_model_are_one_line_errors(cli, note, shipped_models):
    code, _, err = cli("notes", str(note), "--save")
    assert code == 1 and err.strip() == "error: --save needs --patient ID"
    code, out, err = cli("notes", str(note), "--json")  # an empty shipped root: no notes-ner at all
    assert code == 1 and "notes-ner" in json.loads(out)["error"] and len(err.strip().splitlines()) == 1


def test_synth_writes_the_generators_notes(cli, tmp_path):
    from medui.notes.synth import generate

    out = tmp_path / "synth.jsonl"
    code, _, err = cli("notes", "synth", "--n", "3", "--seed", "5", "--out", str(out))
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == generate(3, 5)
    code, _, err = cli("notes", "synth", "--n", "3")
    assert code == 1 and "--out" in err
