"""Notes from what a clinician has at hand: pasted text, a .txt, .docx or .pdf (with a text layer) file, or a
CSV/JSONL batch of many notes, each read into `Document`s.

File types are decided by content where content can tell (PDF, Word); for text the name's suffix says whether it
is one note (.txt) or a batch (.csv, .jsonl). Every refusal is an UploadRejected whose message can be shown as it
is; a batch row that cannot be used becomes a Document with `error` set, so the other rows still go through.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from medui.records import MAX_IDENTIFIER_LENGTH
from medui.uploads import KINDS, UploadRejected, check_upload, decode_text, inspect_zip
from medui.uploads.detect import describe, not_a
from medui.uploads.errors import MB, mb

MAX_DOCUMENT_BYTES = 20 * MB  # a Word or PDF file; the text inside still has to fit the note limit
MAX_BATCH_NOTES = 10_000
MAX_PDF_PAGES = 500
BATCH_SUFFIXES = (".csv", ".jsonl", ".ndjson")
ACCEPTED = ("txt", "docx", "pdf", "csv", "jsonl", "ndjson")  # for the page's file_uploader


class NotUtf8(UploadRejected):
    """Text that is not UTF-8: the page may offer to decode it with replacement characters."""


@dataclass(frozen=True)
class Document:
    """One note: where it came from, its text, and for batch rows the patient it names or why it is unusable."""

    source: str
    text: str = ""
    patient: str | None = None
    error: str | None = None


def is_batch(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in BATCH_SUFFIXES


def decode_note(data: bytes, replace_errors: bool = False) -> str:
    """Uploaded text as a string; non-UTF-8 bytes are refused (NotUtf8) unless `replace_errors` turns them into �."""
    limit = KINDS["text"].max_bytes
    if not data:
        raise UploadRejected("The file is empty.")
    if len(data) > limit:
        raise UploadRejected(f"The file is {mb(len(data))}, over the {mb(limit)} limit for a text note.")
    if describe(data) not in (None, "text"):  # a known binary format says more than "not UTF-8"
        raise not_a("a text file", data)
    return _decoded(data, replace_errors, "This")


def from_paste(text: str, source: str = "pasted note") -> Document:
    if not text.strip():
        raise UploadRejected("The note is empty: paste or type its text first.")
    return Document(source, text)


def read_upload(data: bytes, name: str, replace_errors: bool = False) -> list[Document]:
    """The notes in one uploaded file: one for .txt/.docx/.pdf, one per row for .csv/.jsonl (at most 10,000)."""
    if data.startswith(b"%PDF"):
        return [Document(name, _pdf_text(data))]
    if data.startswith(b"PK\x03\x04"):
        return [Document(name, _docx_text(data))]
    if data.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: the pre-2007 binary Word format
        raise UploadRejected("Old Word .doc files cannot be read: save the note as .docx, PDF or plain text.")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in (".docx", ".pdf"):
        raise not_a("a Word document" if suffix == ".docx" else "a PDF document", data)
    if not is_batch(name):
        return [Document(name, _limited(decode_note(data, replace_errors), "file"))]
    rows = _csv_rows(data, name, replace_errors) if suffix == ".csv" else _jsonl_rows(data, name, replace_errors)
    documents = []
    for document in rows:
        if len(documents) == MAX_BATCH_NOTES:
            raise UploadRejected(f"The batch has more than {MAX_BATCH_NOTES:,} notes: split it into smaller files.")
        documents.append(document)
    if not documents:
        raise UploadRejected("The batch file has no notes in it.")
    return documents


def _decoded(data: bytes, replace_errors: bool, what: str) -> str:
    try:
        return decode_text(data)
    except UploadRejected:
        if b"\x00" in data:
            raise UploadRejected(f"{what} file contains NUL bytes (binary data), not text.") from None
        if not replace_errors:
            raise NotUtf8(f"{what} file is not UTF-8 text. Save it as UTF-8, or read it with replacement "
                          "characters (�) where bytes cannot be decoded.") from None
        return data.decode("utf-8", errors="replace")


def _row(source: str, text: object, patient: object) -> Document:
    """A batch row as a Document, with the reason when its text or patient identifier is unusable."""
    if not isinstance(text, str) or not text.strip():
        return Document(source, error="the text is empty")
    if patient in (None, ""):
        return Document(source, text)
    patient = str(patient).strip()
    if not patient or len(patient) > MAX_IDENTIFIER_LENGTH or not patient.isprintable():
        return Document(source, error=f"the patient identifier must be 1-{MAX_IDENTIFIER_LENGTH} printable characters")
    return Document(source, text, patient)


def _csv_rows(data: bytes, name: str, replace_errors: bool) -> Iterator[Document]:
    """Rows of a CSV with a `text` column and optional `source`/`id` and `patient` columns (any letter case)."""
    try:
        check_upload(data, name, "csv")  # size, binary content, delimiter, over-long fields
    except UploadRejected as exc:
        if "not UTF-8" not in str(exc):
            raise
    text = _decoded(data, replace_errors, "This batch")
    first = text.lstrip().split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=max(",;\t", key=first.count))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if "text" not in header:
            shown = ", ".join(h[:30] for h in header[:10]) or "none"
            raise UploadRejected(f"The CSV table has no 'text' column (its columns: {shown}).")
        column = {key: header.index(key) for key in ("text", "source", "id", "patient") if key in header}
        for n, row in enumerate(reader, 2):  # line 1 is the header
            if not any(cell.strip() for cell in row):
                continue
            cell = {key: row[i] if i < len(row) else "" for key, i in column.items()}
            source = cell.get("source") or cell.get("id") or f"{name} row {n}"
            yield _row(source, cell["text"], cell.get("patient"))
    except csv.Error as exc:
        raise UploadRejected(f"The CSV table cannot be read: {exc}.") from None


def _jsonl_rows(data: bytes, name: str, replace_errors: bool) -> Iterator[Document]:
    """One JSON object a line with a "text" string and optional "source"/"id" and "patient"."""
    if len(data) > KINDS["csv"].max_bytes:
        raise UploadRejected(f"The file is {mb(len(data))}, over the {mb(KINDS['csv'].max_bytes)} limit for a batch.")
    for n, line in enumerate(_decoded(data, replace_errors, "This batch").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name} line {n}"
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield Document(where, error=f"not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})")
            continue
        if not isinstance(row, dict):
            yield Document(where, error="not a JSON object with a \"text\" field")
            continue
        source = row.get("source") or row.get("id")
        yield _row(str(source) if source not in (None, "") else where, row.get("text"), row.get("patient"))


def _checked_size(data: bytes, noun: str) -> None:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise UploadRejected(f"The file is {mb(len(data))}, over the {mb(MAX_DOCUMENT_BYTES)} limit for {noun}.")


def _limited(text: str, noun: str) -> str:
    if not text.strip():
        raise UploadRejected(f"The {noun} contains no text.")
    if len(text.encode("utf-8")) > KINDS["text"].max_bytes:
        raise UploadRejected(f"The text in this {noun} is over the {mb(KINDS['text'].max_bytes)} limit for a note.")
    return text


def _docx_text(data: bytes) -> str:
    """Paragraphs and table rows (cells joined by tabs) of a Word document, in document order."""
    _checked_size(data, "a Word document")
    inspect_zip(data)  # a .docx is a ZIP: refuse bombs, links and odd paths before python-docx opens it
    try:
        import docx
        from docx.table import Table
    except ImportError:
        raise UploadRejected("Reading Word files needs the python-docx package, which this server does not "
                             "have; paste the text or upload it as .txt instead.") from None
    try:
        document = docx.Document(io.BytesIO(data))
        lines = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines += ["\t".join(cell.text for cell in row.cells) for row in block.rows]
            else:
                lines.append(block.text)
    except Exception:  # noqa: BLE001 -- python-docx fails on damaged files with KeyError, lxml errors, ...
        raise UploadRejected("This Word document cannot be read (it is damaged, or not a .docx file).") from None
    return _limited("\n".join(lines), "Word document")


def _pdf_text(data: bytes) -> str:
    """The text layer of a PDF, page by page; a scan without one is refused (MedUI does no OCR)."""
    _checked_size(data, "a PDF document")
    try:
        from pypdf import PdfReader
    except ImportError:
        raise UploadRejected("Reading PDF files needs the pypdf package, which this server does not have; "
                             "paste the text or upload it as .txt instead.") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UploadRejected("This PDF is password-protected: save an unprotected copy and upload that.")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise UploadRejected(f"The PDF has {len(reader.pages):,} pages; the limit is {MAX_PDF_PAGES}.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UploadRejected:
        raise
    except Exception:  # noqa: BLE001 -- pypdf raises many types (PdfReadError, ValueError, KeyError) on bad files
        raise UploadRejected("This PDF cannot be read (it is damaged).") from None
    text = "\n\n".join(page.strip("\n") for page in pages)
    if not text.strip():
        raise UploadRejected("This PDF has no text layer (it is probably a scan); MedUI does not read scanned "
                             "text. Upload the original document or paste the text.")
    return _limited(text, "PDF")
