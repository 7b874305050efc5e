"""ner datasets in CoNLL BIO and BRAT standoff: converted to JSONL-shaped span rows, problems named by file and line."""

from __future__ import annotations

import io
import zipfile

import pytest

from medui.training import DatasetError, JobSpec, validate_dataset
from medui.training.ner_formats import detect_format, read_brat, read_conll
from medui.training.tasks import get_task

CONLL = """-DOCSTART- -X- O O

Patient NN O
denies VB O
chest NN B-PROBLEM
pain NN I-PROBLEM
. . O

Started VB O
aspirin NN B-MEDICATION
81 CD I-MEDICATION
mg NN I-MEDICATION
daily RB O
"""


def spans(row):
    return [(row["text"][e["start"]:e["end"]], e["label"]) for e in row["entities"]]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def make_zip(tmp_path, files, name="corpus.zip"):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for entry, text in files.items():
            zf.writestr(entry, text)
    path = tmp_path / name
    path.write_bytes(buffer.getvalue())
    return path


def test_conll_round_trip_to_spans_with_docstart_ignored(tmp_path):
    out = read_conll(write(tmp_path, "notes.conll", CONLL))
    assert out.rows == 2 and not out.rejected and not out.notes
    first, second = out.items
    assert first["text"] == "Patient denies chest pain ." and "DOCSTART" not in first["text"]
    assert spans(first) == [("chest pain", "PROBLEM")]
    assert first["entities"] == [{"start": 15, "end": 25, "label": "PROBLEM"}]
    assert second["text"] == "Started aspirin 81 mg daily"
    assert spans(second) == [("aspirin 81 mg", "MEDICATION")]
    assert (first["line"], second["line"], first["where"]) == (3, 9, "notes.conll line 3")


def test_conll_tab_columns_and_crlf(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"Fever\tB-PROBLEM\r\nand\tO\r\nchills\tB-PROBLEM\r\n")
    assert detect_format(path) == "conll"
    (row,) = read_conll(path).items
    assert spans(row) == [("Fever", "PROBLEM"), ("chills", "PROBLEM")]


def test_conll_iob1_start_is_accepted_and_reported(tmp_path):
    out = read_conll(write(tmp_path, "n.conll", "Took O\naspirin I-MEDICATION\nfor O\nheadache I-PROBLEM\n"
                                              "pain I-PROBLEM\n"))
    (row,) = out.items
    assert spans(row) == [("aspirin", "MEDICATION"), ("headache pain", "PROBLEM")]
    assert len(out.notes) == 2
    assert out.notes[0] == "n.conll line 2: I-MEDICATION after O starts a new entity (IOB1 style)"
    assert out.notes[1].startswith("n.conll line 4: I-PROBLEM")


def test_conll_type_change_on_i_tag_starts_a_new_entity(tmp_path):
    out = read_conll(write(tmp_path, "n.conll", "aspirin B-MEDICATION\nheadache I-PROBLEM\n"))
    assert spans(out.items[0]) == [("aspirin", "MEDICATION"), ("headache", "PROBLEM")]
    assert "after an entity of type MEDICATION" in out.notes[0]


@pytest.mark.parametrize("tag", ["B-", "X-PROBLEM", "I-", "B-sign-symptom", "b-PROBLEM"])
def test_conll_bad_tag_refused_with_line(tmp_path, tag):
    path = write(tmp_path, "bad.conll", f"Fever B-PROBLEM\n\nCough O\nnow {tag}\n")
    out = read_conll(path)
    assert len(out.items) == 1
    assert out.rejected == [{"row": 3, "reason": out.rejected[0]["reason"]}]
    assert out.rejected[0]["reason"].startswith(f"bad.conll line 4: unknown tag {tag!r}")


def test_conll_line_without_tag_refused(tmp_path):
    out = read_conll(write(tmp_path, "bad.conll", "Fever B-PROBLEM\nalone\n"))
    assert out.rejected[0]["reason"].startswith("bad.conll line 2: expected a token and a tag")


def test_ner_task_validates_a_conll_file_with_label_counts(tmp_path):
    sentences = []
    for i in range(12):
        sentences.append(f"Patient O\nreports O\nchest B-PROBLEM\npain I-PROBLEM\nafter O\n"
                         f"aspirin B-MEDICATION\ndose{i} O\n")
    path = write(tmp_path, "notes.conll", "-DOCSTART- O\n\n" + "\n".join(sentences))
    report = validate_dataset(JobSpec(task="ner", data=str(path)))
    assert report["counts"] == {"MEDICATION": 12, "PROBLEM": 12}
    assert report["rows"] == report["accepted"] == 12 and report["rejected"] == []
    assert report["format"] == "conll" and report["entities"] == 24
    assert sum(report["sizes"].values()) == 12


def test_ner_task_refuses_a_bad_conll_tag_naming_the_line(tmp_path):
    path = write(tmp_path, "notes.conll", "Fever B-PROBLEM\n\nCough B-\n")
    with pytest.raises(DatasetError, match=r"^notes\.conll line 3: unknown tag 'B-'"):
        get_task("ner").read(path, JobSpec(task="ner"))


def test_format_detection(tmp_path):
    assert detect_format(write(tmp_path, "a.jsonl", '{"text": "x", "entities": []}\n')) == "jsonl"
    assert detect_format(write(tmp_path, "b.txt", '\n{"text": "x", "entities": []}\n')) == "jsonl"
    assert detect_format(write(tmp_path, "c.conll", "x O\n")) == "conll"
    assert detect_format(make_zip(tmp_path, {"a.txt": "x"})) == "brat"
    with pytest.raises(DatasetError, match="not a ZIP archive"):
        detect_format(write(tmp_path, "d.zip", "x O\n"))
    with pytest.raises(DatasetError, match="ner datasets are JSONL"):
        detect_format(write(tmp_path, "e.csv", "x,O\n"))


DOC1 = "Pt denies chest pain.\nStarted aspirin 81 mg.\n"
ANN1 = ("T1\tPROBLEM 10 20\tchest pain\n"
        "T2\tMEDICATION 30 43\taspirin 81 mg\n"
        "R1\tTreats Arg1:T2 Arg2:T1\n"
        "A1\tNegated T1\n"
        "#1\tAnnotatorNotes T1\tdenied\n"
        "E1\tStart:T2\n")
DOC2 = "Fever and\r\nchills overnight."
ANN2 = "T1\tPROBLEM 0 5\tFever\r\nT2\tPROBLEM 11 17\tchills\r\n"


def test_brat_zip_with_two_documents_gives_exact_offsets(tmp_path):
    path = make_zip(tmp_path, {"notes/doc1.txt": DOC1, "notes/doc1.ann": ANN1, "notes/doc2.txt": DOC2,
                               "notes/doc2.ann": ANN2, "annotation.conf": "[entities]\nPROBLEM\n",
                               "__MACOSX/notes/._doc1.txt": "\x00\x05"})
    out = read_brat(path)
    assert out.rows == 2 and not out.rejected and not out.notes
    doc1, doc2 = out.items
    assert doc1["text"] == DOC1 and doc1["where"] == "notes/doc1.txt"
    assert doc1["entities"] == [{"start": 10, "end": 20, "label": "PROBLEM"},
                                {"start": 30, "end": 43, "label": "MEDICATION"}]
    assert spans(doc1) == [("chest pain", "PROBLEM"), ("aspirin 81 mg", "MEDICATION")]
    assert doc2["text"] == DOC2  # newlines kept as stored: offsets count the \r\n
    assert spans(doc2) == [("Fever", "PROBLEM"), ("chills", "PROBLEM")]


def test_brat_txt_without_ann_is_a_document_without_entities(tmp_path):
    out = read_brat(make_zip(tmp_path, {"a.txt": DOC1, "a.ann": ANN1, "b.txt": "Nothing to report."}))
    assert [row["entities"] for row in out.items][1] == [] and not out.rejected


def test_brat_mismatched_span_text_refused_naming_file_and_tid(tmp_path):
    bad = ANN1.replace("T2\tMEDICATION 30 43\taspirin 81 mg", "T2\tMEDICATION 30 43\taspirin 80 mg")
    out = read_brat(make_zip(tmp_path, {"d/doc1.txt": DOC1, "d/doc1.ann": bad}))
    assert out.items == []
    reason = out.rejected[0]["reason"]
    assert reason.startswith("d/doc1.ann line 2 (T2): span text 'aspirin 80 mg' does not match the .txt")
    assert "'aspirin 81 mg'" in reason


def test_brat_discontinuous_span_is_split_and_reported(tmp_path):
    text = "Pain in left and right knee."
    ann = "T1\tPROBLEM 0 12;23 27\tPain in left knee\nT2\tPROBLEM 17 22\tright\n"
    out = read_brat(make_zip(tmp_path, {"k.txt": text, "k.ann": ann}))
    (row,) = out.items
    assert spans(row) == [("Pain in left", "PROBLEM"), ("knee", "PROBLEM"), ("right", "PROBLEM")]
    assert out.notes == ["k.ann line 1 (T1): discontinuous PROBLEM 0 12;23 27 split into 2 entities"]


def test_brat_orphan_ann_refused(tmp_path):
    out = read_brat(make_zip(tmp_path, {"a.txt": DOC1, "a.ann": ANN1, "lost.ann": "T1\tPROBLEM 0 1\tx\n"}))
    assert len(out.items) == 1
    assert out.rejected == [{"row": 2, "reason": "lost.ann: no lost.txt beside it in the archive"}]


@pytest.mark.parametrize("line, message", [
    ("T1\tPROBLEM 10 20", "(T1): expected ID<TAB>TYPE START END<TAB>TEXT"),
    ("T1\tPROBLEM ten 20\tchest pain", "(T1): offsets 'ten 20' are not START END"),
    ("T1\tPROBLEM 10 999\tchest pain", "(T1): span 10-999 is empty, reversed or past the end"),
    ("T1\tSign-symptom 10 20\tchest pain", "(T1): type 'Sign-symptom' must be a bare entity type"),
    ("X1\tsomething", ": not a BRAT annotation line"),
])
def test_brat_malformed_lines_name_file_line_and_tid(tmp_path, line, message):
    out = read_brat(make_zip(tmp_path, {"doc.txt": DOC1, "doc.ann": "#1\tnote\n" + line + "\n"}))
    assert out.rejected[0]["reason"].startswith("doc.ann line 2") and message in out.rejected[0]["reason"]


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt"])
def test_brat_zip_slip_names_refused_by_the_upload_guard(tmp_path, name):
    path = make_zip(tmp_path, {"ok.txt": "fine", name: "evil"})
    with pytest.raises(DatasetError, match=r"^corpus\.zip: ZIP entry .* (points outside|absolute path)"):
        read_brat(path)
    assert not (tmp_path / "evil.txt").exists()


def test_ner_task_reads_a_brat_zip_and_names_the_file_on_overlap(tmp_path):
    files = {f"d{i}.txt": DOC1 for i in range(6)} | {f"d{i}.ann": ANN1 for i in range(6)}
    examples = get_task("ner").read(make_zip(tmp_path, files), JobSpec(task="ner"))
    assert examples.counts == {"MEDICATION": 6, "PROBLEM": 6} and examples.info["format"] == "brat"
    overlap = ANN1 + "T9\tPROBLEM 16 20\tpain\n"
    with pytest.raises(DatasetError, match=r"^d0\.txt: entities .* overlap"):
        get_task("ner").read(make_zip(tmp_path, files | {"d0.ann": overlap}, "o.zip"), JobSpec(task="ner"))
