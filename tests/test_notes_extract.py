"""The notes pipeline with the real shipped notes-ner model: the acceptance note, long notes, offsets, determinism."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medui.notes.extract import extract, extract_many, load_model

ACCEPTANCE = "Pt denies chest pain. Hx of T2DM on metformin 500 mg PO BID. Mother had breast cancer."

pytestmark = pytest.mark.slow  # loads the shipped model (base from its pip package): seconds, once per process


def _one(result: dict, label: str, words: str) -> dict:
    found = [e for e in result["entities"] if e["label"] == label and words in e["text"].lower()]
    assert len(found) == 1, (label, words, result["entities"])
    return found[0]


def test_acceptance_note():
    result = extract(ACCEPTANCE, source="pasted")
    assert result["source"] == "pasted" and result["model"] == {"name": "notes-ner", "version": "1"}
    assert result["chars_total"] == result["chars_processed"] == len(ACCEPTANCE)
    assert _one(result, "PROBLEM", "chest pain")["assertion"] == "absent"
    diabetes = _one(result, "PROBLEM", "t2dm")
    assert diabetes["assertion"] == "present" and diabetes["codes"][0]["code"].startswith("E11")
    assert diabetes["codes"][0]["system"] == "ICD-10-CM"
    assert [c["score"] for c in diabetes["codes"]] == sorted((c["score"] for c in diabetes["codes"]), reverse=True)
    assert _one(result, "PROBLEM", "breast cancer")["assertion"] == "family"
    [row] = result["medications"]
    assert [(row[k] or {}).get("text") for k in ("medication", "dosage", "route", "frequency")] == [
        "metformin", "500 mg", "PO", "BID"]
    assert row["code"]["generic"] == "metformin" and row["code"]["drugbank_id"] == "DB00331"
    assert {c["system"] for c in row["medication"]["codes"]} == {"DrugBank", "MeSH"}
    for e in result["entities"]:
        assert ACCEPTANCE[e["start"]:e["end"]] == e["text"]
        assert (e["assertion"] is None) == (e["label"] not in ("PROBLEM", "MEDICATION"))
    assert result["vocabularies"]


def test_a_note_longer_than_the_window_is_merged_without_loss_or_duplicates():
    copies = 40
    note = "\r\n\t😀 ".join([ACCEPTANCE] * copies)  # ~1,000 tokens: about twenty overlapping windows
    result = extract(note)
    assert result["chars_total"] == result["chars_processed"] == len(note)
    spans = [(e["start"], e["end"]) for e in result["entities"]]
    assert spans == sorted(set(spans)) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    chest = [e for e in result["entities"] if e["text"].lower() == "chest pain"]
    assert len(chest) == copies and {e["assertion"] for e in chest} == {"absent"}
    assert sum(m["medication"]["text"] == "metformin" for m in result["medications"]) == copies
    for e in result["entities"]:
        assert note[e["start"]:e["end"]] == e["text"]


def test_same_input_same_output_alone_or_in_a_batch():
    other = "ASSESSMENT/PLAN:\n1. Community-acquired pneumonia - start amoxicillin 1 g PO TID.\nRule out PE."
    alone = extract(ACCEPTANCE)
    batch = extract_many([ACCEPTANCE, other, ACCEPTANCE])
    assert batch[0] == batch[2] == alone == extract(ACCEPTANCE)
    assert batch[1] == extract(other)


PIECES = st.sampled_from(["Pt denies chest pain.", " Hx of T2DM on metformin 500 mg PO BID.", "\r\n", "\t", "😀",
                          "Mother had breast cancer.", "naïve ", "HbA1c 7.2%", "  ", "日本語", "\u200b", "Ω"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.one_of(PIECES, st.characters(exclude_categories=("Cs",))), min_size=1, max_size=30))
def test_entity_offsets_index_the_original_text(pieces):
    text = "".join(pieces)
    if not text.strip():
        return
    model = load_model()
    result = extract(text, model=model)
    assert result["chars_total"] == result["chars_processed"] == len(text)
    for e in result["entities"]:
        assert text[e["start"]:e["end"]] == e["text"] and e["text"].strip()
