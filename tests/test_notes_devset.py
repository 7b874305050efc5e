"""The hand-written notes dev set: it converts, its offsets are exact (CRLF, Unicode), its gold codes are real
ICD-10-CM codes, it covers every label and assertion, and the markup converter round-trips any text."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import simple_icd_10_cm as icd
from hypothesis import given, settings
from hypothesis import strategies as st

from medui.notes.devset import ASSERTIONS, DEV_DIR, LABELS, MarkupError, load_devset, parse, render
from medui.notes.lexicon import SECTIONS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def devset() -> list[dict]:
    return load_devset()


def test_dev_set_has_at_least_40_notes_with_exact_spans(devset: list[dict]) -> None:
    assert len(devset) >= 40 and len({n["id"] for n in devset}) == len(devset)
    for note in devset:
        assert note["entities"], note["id"]
        for ent in note["entities"]:
            assert note["text"][ent["start"]:ent["end"]] == ent["text"] == ent["text"].strip()
            assert ent["section"] in {*SECTIONS, None}


def test_acceptance_note_is_in_the_dev_set(devset: list[dict]) -> None:
    note = next(n for n in devset if n["id"] == "01_acceptance_triage")
    assert note["text"].strip() == ("Pt denies chest pain. Hx of T2DM on metformin 500 mg PO BID. "
                                    "Mother had breast cancer.")
    got = [(e["text"], e["label"], e["assertion"], e["historical"], e["icd10"]) for e in note["entities"]]
    assert got == [("chest pain", "PROBLEM", "absent", False, "R07.9"), ("T2DM", "PROBLEM", "present", True, "E11.9"),
                   ("metformin", "MEDICATION", None, None, None), ("500 mg", "DOSAGE", None, None, None),
                   ("PO", "ROUTE", None, None, None), ("BID", "FREQUENCY", None, None, None),
                   ("breast cancer", "PROBLEM", "family", False, "C50.919")]


def test_every_gold_code_is_a_billable_icd10cm_code(devset: list[dict]) -> None:
    problems = [e for n in devset for e in n["entities"] if e["label"] == "PROBLEM"]
    bad = [(e["text"], e["icd10"]) for e in problems
           if not e["icd10"] or not icd.is_valid_item(e["icd10"]) or not icd.is_leaf(e["icd10"])]
    assert bad == []
    other = [e for n in devset for e in n["entities"] if e["label"] != "PROBLEM"]
    assert all(e["icd10"] is None and e["assertion"] is None for e in other)


def test_dev_set_covers_every_label_assertion_and_section(devset: list[dict]) -> None:
    ents = [e for n in devset for e in n["entities"]]
    labels = Counter(e["label"] for e in ents)
    assert set(labels) == set(LABELS) and min(labels.values()) >= 20
    problems = [e for e in ents if e["label"] == "PROBLEM"]
    assertions = Counter(e["assertion"] for e in problems)
    assert set(assertions) == set(ASSERTIONS) and min(assertions.values()) >= 15
    assert sum(e["historical"] for e in problems) >= 30
    assert {e["section"] for e in ents} >= set(SECTIONS)


def test_crlf_and_unicode_notes_keep_exact_offsets(devset: list[dict]) -> None:
    crlf = [n for n in devset if "\r\n" in n["text"]]
    assert len(crlf) >= 3
    assert (DEV_DIR / f"{crlf[0]['id']}.txt").read_bytes().count(b"\r\n") == crlf[0]["text"].count("\r\n")
    last = crlf[0]["entities"][-1]
    assert crlf[0]["text"][last["start"]:last["end"]] == last["text"]
    assert any(any(ord(c) > 0xFFFF for c in n["text"]) for n in devset)  # emoji: one Python char, not two


def test_dev_notes_are_not_copied_into_the_generator(devset: list[dict]) -> None:
    source = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "medui" / "notes").glob("synth*.py"))
    lines = [line.strip() for n in devset for line in n["text"].splitlines() if len(line.strip()) >= 40]
    assert [line for line in lines if line[:40] in source] == []


@pytest.mark.parametrize(("markup", "message"), [
    ("[chest pain]{PROBLEM}", "needs an assertion"),
    ("[chest pain]{PROBLEM|denied}", "unknown attribute"),
    ("[metformin]{DRUG}", "unknown label"),
    ("[metformin]{MEDICATION|present}", "only PROBLEM takes attributes"),
    ("[chest [pain]{PROBLEM|absent}", "nested"),
    ("chest pain]{PROBLEM|absent}", "must close an entity"),
    ("[chest pain", "never closed"),
    ("[ chest pain]{PROBLEM|absent}", "whitespace"),
    ("[]{TEST}", "empty entity"),
    ("a {b}", "stray"),
    ("{{Vitals}}BP 120/80", "section marker"),
    ("ok\n\\x", "line 2, column 1: a backslash"),
])
def test_bad_markup_is_refused_with_a_located_message(markup: str, message: str) -> None:
    with pytest.raises(MarkupError, match=message.replace("[", r"\[")):
        parse(markup)


def test_escapes_and_sections() -> None:
    note = parse("\\[draft\\] {{PMH}}PMH: [HTN]{PROBLEM|present|hist|icd=I10} \\{x\\} \\\\")
    assert note["text"] == "[draft] PMH: HTN {x} \\"
    assert note["entities"][0] == {"start": 13, "end": 16, "text": "HTN", "label": "PROBLEM",
                                        "assertion": "present", "historical": True, "icd10": "I10", "section": "PMH"}


_TEXT = st.text(st.sampled_from(list("ab [ ]{}\\\r\n\t|é🙂")), min_size=1, max_size=60)


@st.composite
def _annotated(draw) -> tuple[str, list[dict]]:
    text = draw(_TEXT)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=8))))
    entities, section = [], None
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        surface = text[start:end]
        if not surface.strip() or surface != surface.strip():
            continue
        label = draw(st.sampled_from(LABELS))
        section = draw(st.sampled_from(SECTIONS)) if draw(st.booleans()) else section
        ent = {"start": start, "end": end, "text": surface, "label": label, "assertion": None, "historical": None,
               "icd10": None, "section": section}
        if label == "PROBLEM":
            ent |= {"assertion": draw(st.sampled_from(ASSERTIONS)), "historical": draw(st.booleans()),
                    "icd10": draw(st.sampled_from((None, "E11.9", "R07.9")))}
        entities.append(ent)
    return text, entities


@settings(max_examples=300, deadline=None)
@given(_annotated())
def test_render_then_parse_gives_back_text_and_spans(case: tuple[str, list[dict]]) -> None:
    text, entities = case
    note = parse(render(text, entities))
    assert note["text"] == text
    assert note["entities"] == entities
