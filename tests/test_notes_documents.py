"""Reading notes: pasted text, .txt, .docx, .pdf with a text layer, CSV/JSONL batches, and bad input in words."""

import io
import json
import zipfile

import pytest

from medui.notes.documents import MAX_BATCH_NOTES, Document, NotUtf8, decode_note, from_paste, read_upload
from medui.uploads import UploadRejected

NOTE = "Pt denies chest pain.\r\nHx of T2DM on metformin 500 mg PO BID.\tMother had breast cancer. 🩺"


def test_text_file_keeps_the_note_exactly():
    assert read_upload(NOTE.encode("utf-8"), "note.txt") == [Document("note.txt", NOTE)]
    assert read_upload(b"\xef\xbb\xbf" + NOTE.encode(), "note.txt")[0].text == NOTE  # the BOM is not text
    assert from_paste(NOTE) == Document("pasted note", NOTE)


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty."),
    (b"  \r\n\t ", "contains no text"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "not a text file (it looks like a PNG image)"),
    (b"abc\x00def", "NUL bytes"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 50, "Old Word .doc files"),
    (b"just text", "This is not a PDF document (it looks like text)"),
])
def test_unusable_files_are_refused_in_words(data, message):
    name = "note.pdf" if data == b"just text" else "note.txt"
    with pytest.raises(UploadRejected, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_upload(data, name)


def test_empty_paste_and_oversized_note_are_refused():
    with pytest.raises(UploadRejected, match="empty"):
        from_paste(" \n ")
    with pytest.raises(UploadRejected, match="over the 5 MB limit"):
        decode_note(b"a" * (5 * 1024**2 + 1))


def test_non_utf8_is_refused_unless_replacement_is_asked_for():
    latin1 = "Patient mit Übelkeit, café".encode("latin-1")
    with pytest.raises(NotUtf8, match="not UTF-8"):
        read_upload(latin1, "note.txt")
    text = read_upload(latin1, "note.txt", replace_errors=True)[0].text
    assert text == "Patient mit \ufffdbelkeit, caf\ufffd"
    with pytest.raises(NotUtf8):
        read_upload(b"text,patient\ncaf\xe9,p1\n", "batch.csv")
    assert read_upload(b"text,patient\ncaf\xe9,p1\n", "batch.csv", replace_errors=True)[0].text == "caf\ufffd"


def test_csv_batch_reads_text_patient_and_source_and_flags_bad_rows():
    data = ("Text;Patient;Source\n"
            "\"Pt denies chest pain;\nno fever\";bed-1;admission\n"
            ";bed-2;empty one\n"
            "On metformin.;;\n"
            "Hx of asthma.;\x07bad;\n").encode()
    docs = read_upload(data, "batch.csv")
    assert docs[0] == Document("admission", "Pt denies chest pain;\nno fever", "bed-1")
    assert docs[1] == Document("empty one", error="the text is empty")
    assert docs[2] == Document("batch.csv row 4", "On metformin.")  # rows as a spreadsheet counts them
    assert "printable" in docs[3].error


def test_csv_without_a_text_column_is_refused():
    with pytest.raises(UploadRejected, match="no 'text' column \\(its columns: note, patient\\)"):
        read_upload(b"note,patient\nx,y\n", "batch.csv")


def test_jsonl_batch_flags_bad_lines_and_keeps_the_others():
    data = "\n".join([json.dumps({"text": NOTE, "patient": "bed-1", "id": "n1"}), "{not json", "[1, 2]",
                      json.dumps({"text": ""}), "", json.dumps({"text": "Hx of asthma."})]).encode()
    docs = read_upload(data, "notes.jsonl")
    assert docs[0] == Document("n1", NOTE, "bed-1")
    assert docs[1].source == "notes.jsonl line 2" and docs[1].error.startswith("not valid JSON")
    assert docs[2].error == "not a JSON object with a \"text\" field"
    assert docs[3].error == "the text is empty"
    assert docs[4] == Document("notes.jsonl line 6", "Hx of asthma.")


def test_batch_limits():
    with pytest.raises(UploadRejected, match="no notes"):
        read_upload(b"\n\n", "notes.jsonl")
    many = "".join(json.dumps({"text": "x"}) + "\n" for _ in range(MAX_BATCH_NOTES + 1)).encode()
    with pytest.raises(UploadRejected, match="more than 10,000 notes"):
        read_upload(many, "notes.jsonl")


def test_docx_paragraphs_and_tables_in_order():
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_paragraph("Medications:")
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "metformin", "500 mg PO BID"
    document.add_paragraph("Pt denies chest pain.")
    buffer = io.BytesIO()
    document.save(buffer)
    assert read_upload(buffer.getvalue(), "letter.docx") == [
        Document("letter.docx", "Medications:\nmetformin\t500 mg PO BID\nPt denies chest pain.")]


def test_damaged_docx_and_zip_bomb_are_refused():
    pytest.importorskip("docx")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("hello.txt", "not a word document")
    with pytest.raises(UploadRejected, match="Word document cannot be read"):
        read_upload(buffer.getvalue(), "letter.docx")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b"0" * 50_000_000)
    with pytest.raises(UploadRejected, match="zip bomb"):
        read_upload(bomb.getvalue(), "letter.docx")


def pdf(text: str) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure()
    if text:
        figure.text(0.1, 0.5, text)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="pdf")
    return buffer.getvalue()


def test_pdf_text_layer_is_read_and_a_scan_is_refused():
    pytest.importorskip("pypdf")
    assert read_upload(pdf("Pt denies chest pain."), "letter.pdf") == [
        Document("letter.pdf", "Pt denies chest pain.")]
    with pytest.raises(UploadRejected, match="no text layer"):
        read_upload(pdf(""), "scan.pdf")
    with pytest.raises(UploadRejected, match="PDF cannot be read"):
        read_upload(b"%PDF-1.4\n garbage", "broken.pdf")


def test_missing_reader_packages_are_named(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pypdf", None)  # as if pypdf were not installed
    with pytest.raises(UploadRejected, match="needs the pypdf package"):
        read_upload(pdf("x"), "letter.pdf")
