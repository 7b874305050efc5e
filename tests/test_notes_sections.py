"""Section headers → canonical section names with offsets on the original text."""

from __future__ import annotations

from medui.notes.sections import Section, find_sections, section_at

NOTE = (
    "Chief Complaint: chest pain\r\n"
    "HPI: 65 yo M with SOB.\r\n"
    "\tPAST MEDICAL HISTORY\r\n"
    "HTN, T2DM\r\n"
    "A-fib noted on ECG\r\n"
    "Meds - metformin 500 mg PO BID\r\n"
    "FHx -\r\n"
    "Mother: breast cancer \U0001f600\r\n"
    "**Assessment/Plan**\r\n"
    "history of falls\r\n"
    "A/P: f/u in 2 weeks"
)


def test_headers_with_and_without_colon_abbreviations_crlf_tabs_and_unicode():
    sections = find_sections(NOTE)
    assert [s.name for s in sections] == ["HPI", "HPI", "PMH", "Medications", "Family history", "Assessment/Plan",
                                          "Assessment/Plan"]
    assert sections[0].start == 0 and sections[-1].end == len(NOTE)
    for before, after in zip(sections, sections[1:]):
        assert before.end == after.start
    # each section starts on its header, on the original (CRLF, tab, emoji) text
    assert NOTE[sections[2].start:].startswith("\tPAST MEDICAL HISTORY")
    assert NOTE[sections[4].start:].startswith("FHx -")
    assert NOTE[sections[5].start:].startswith("**Assessment/Plan**")


def test_prose_lines_do_not_open_sections():
    # "A-fib noted" is not the SOAP "A:", "history of falls" is not a header, "s/p CABG" is not "S:"
    text = "A-fib noted\nhistory of falls\ns/p CABG\nPlan well tolerated by patient"
    assert find_sections(text) == []


def test_soap_letters_need_a_colon_and_lower_case_headers_need_one_too():
    assert [s.name for s in find_sections("S: cough\nO: afebrile\nA: URI\nP: fluids")] == [
        "HPI", "Physical exam", "Assessment/Plan", "Assessment/Plan"]
    assert [s.name for s in find_sections("pmh: htn\nmeds\n")] == ["PMH"]


def test_section_at_offsets():
    text = "Intro line\nPMH: HTN\nFamily History:\nMother - breast cancer"
    sections = find_sections(text)
    assert sections == [Section("PMH", 11, 20), Section("Family history", 20, len(text))]
    assert section_at(sections, 0) is None
    assert section_at(sections, text.index("HTN")) == "PMH"
    assert section_at(sections, text.index("breast")) == "Family history"
    assert section_at(sections, len(text)) is None
    assert section_at([], 3) is None


def test_qualified_and_compound_headers():
    text = "Labs today: Na 131\nExam/Vitals: BP 150/90\nAssessment and Recommendations:\n1. Hyponatremia"
    assert [s.name for s in find_sections(text)] == ["Labs/Results", "Physical exam", "Assessment/Plan"]
