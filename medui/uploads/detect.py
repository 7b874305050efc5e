"""Content detection for each upload kind: magic bytes and light parsing, never the file name.

Each detector takes the raw bytes, raises UploadRejected when they are not of its kind, and returns the
normalised extension (with the dot) for the server-side name.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import warnings
import zipfile

from medui.uploads.errors import MB, UploadRejected, mb

# (offset, magic, what it is): used both to detect kinds and to say what a wrong file looks like.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (128, b"DICM", "a DICOM file"),
    (0, b"PK\x03\x04", "a ZIP archive"),
    (0, b"PK\x05\x06", "a ZIP archive"),
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF8", "a GIF image"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"%PDF", "a PDF document"),
    (0, b"\x7fELF", "an executable program"),
    (0, b"MZ", "an executable program"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!", "a RAR archive"),
    (257, b"ustar", "a tar archive"),
    (0, b"0       ", "an EDF recording"),
)
PNG, JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
PICKLE_REFUSED = "Pickled model files are refused: convert to safetensors."
MAX_CSV_FIELD = 10 * MB
MAX_SAFETENSORS_HEADER = 100 * MB


def describe(data: bytes) -> str | None:
    """What the bytes look like ('a ZIP archive', 'text', ...), or None when unrecognised."""
    for offset, magic, what in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return what
    if len(data) > 1 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return "a pickled Python object"
    head = data[:4096]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Cutting at 4096 bytes may split a character; any other decoding failure means this is not text.
        if exc.reason != "unexpected end of data" or len(data) <= len(head):
            return None
    return "text" if b"\x00" not in head else None


def not_a(noun: str, data: bytes) -> UploadRejected:
    """'This is not a DICOM file (it looks like a ZIP archive).'"""
    looks = describe(data)
    return UploadRejected(f"This is not {noun}" + (f" (it looks like {looks})." if looks else "."))


def _encoding(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"  # the BOM tells the codec the byte order
    return "utf-8"  # no cp1252 fallback: guessing an encoding silently corrupts clinical text


def decode_text(data: bytes) -> str:
    """Decode uploaded text: UTF-8, UTF-8 with BOM, or UTF-16 with BOM; anything else is refused."""
    try:
        text = data.decode(_encoding(data))
    except UnicodeDecodeError:
        raise UploadRejected("This is not UTF-8 text: save it as UTF-8 and upload it again.") from None
    if "\x00" in text:
        raise UploadRejected("This file contains NUL bytes (binary data), not text.")
    return text


def _text(data: bytes, noun: str) -> str:
    try:
        return decode_text(data)
    except UploadRejected:
        if describe(data) not in (None, "text"):  # a known binary format says more than "not UTF-8"
            raise not_a(noun, data) from None
        raise


def _first_line(text: str, skip_comments: bool = False) -> str | None:
    start = 0
    while start < len(text):  # walk line by line rather than split a 100 MB text into a list
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end].strip()
        if line and not (skip_comments and line.startswith("#")):
            return line
        start = end + 1
    return None


def dicom(data: bytes) -> str:
    """DICOM Part 10 (DICM at 128), or preamble-less DICOM that pydicom parses plausibly."""
    if data[128:132] == b"DICM":
        # PS3.10 7.5 lets the preamble hold anything, but it should be zeros or TIFF: an executable there is a polyglot.
        if data.startswith((b"MZ", b"\x7fELF")):
            raise UploadRejected("This DICOM file's preamble carries an executable; refusing it.")
        return ".dcm"
    import pydicom  # only for the rare preamble-less file

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True, defer_size="1 KB")
            plausible = any(tag.group in (0x0008, 0x0028) for tag in ds.keys())  # noqa: SIM118 -- iter(ds) gives elements
    except Exception:  # noqa: BLE001 -- force=True parses arbitrary bytes, and pydicom can fail on them in many ways
        plausible = False
    if not plausible:
        raise not_a("a DICOM file", data)
    return ".dcm"


def zip_archive(data: bytes) -> str:
    """A ZIP archive that zipfile can open; its entries are checked by inspect_zip."""
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise not_a("a ZIP archive", data)
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise UploadRejected("The ZIP archive is damaged.")
    return ".zip"


def csv_table(data: bytes) -> str:
    """Delimited text: a comma, semicolon or tab on the first line, no field over 10 MB."""
    text = _text(data, "a CSV table")
    first = _first_line(text)
    if first is None:
        raise UploadRejected("The CSV file has no rows.")
    delimiter = max(",;\t", key=first.count)
    if not first.count(delimiter):
        raise UploadRejected("This is not a CSV table (no comma, semicolon or tab on its first line).")
    if len(text) > MAX_CSV_FIELD and _has_long_field(data, delimiter):
        raise UploadRejected(f"A CSV field is longer than {mb(MAX_CSV_FIELD)}.")
    return ".csv"


def _has_long_field(data: bytes, delimiter: str) -> bool:
    # The csv module's C reader stops at the first field over its limit, and reading through a TextIOWrapper
    # streams the bytes instead of copying the decoded text. The limit is process-wide: MedUI uses 10 MB everywhere.
    csv.field_size_limit(MAX_CSV_FIELD)
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=_encoding(data), newline="")
    try:
        collections.deque(csv.reader(stream, delimiter=delimiter), maxlen=0)  # consume without keeping rows
    except csv.Error as exc:
        if "field limit" in str(exc):
            return True
        raise UploadRejected("This CSV table cannot be read.") from None
    return False


def text_note(data: bytes) -> str:
    """Plain text such as a clinical note."""
    _text(data, "a text file")
    return ".txt"


def image(data: bytes) -> str:
    """PNG or JPEG, by magic bytes."""
    if data.startswith(PNG):
        return ".png"
    if data.startswith(JPEG):
        return ".jpg"
    raise not_a("a PNG or JPEG image", data)


def edf(data: bytes) -> str:
    """EDF/EDF+: version '0' and a numeric header size."""
    if not data.startswith(b"0       "):
        raise not_a("an EDF recording", data)
    field = data[184:192].strip()
    if not (len(data) >= 256 and field.isdigit() and 256 <= int(field) <= len(data)):
        raise UploadRejected("The EDF header is damaged (its header size field is not a valid number).")
    return ".edf"


def wfdb_header(data: bytes) -> str:
    """A WFDB .hea file: a record line with an integer signal count."""
    line = _first_line(_text(data, "a WFDB header"), skip_comments=True)
    fields = line.split() if line else []
    # The record line is "name[/segments] n_signals [fs [n_samples ...]]".
    if len(fields) < 2 or not (fields[1].isascii() and fields[1].isdigit()):
        raise UploadRejected("This is not a WFDB header (its record line has no signal count).")
    return ".hea"


def safetensors(data: bytes) -> str:
    """A safetensors file: u64 header length, then a JSON object; pickles are refused."""
    if data[:1] == b"\x80" or data.startswith(b"PK\x03\x04"):  # pickle protocol marker, or torch.save's zip
        raise UploadRejected(PICKLE_REFUSED)
    if len(data) < 10 or data[8:9] != b"{":
        raise not_a("a safetensors model", data)
    n = int.from_bytes(data[:8], "little")
    if n > MAX_SAFETENSORS_HEADER:
        raise UploadRejected(f"The safetensors header is too large (over {mb(MAX_SAFETENSORS_HEADER)}).")
    if n < 2 or n + 8 > len(data):
        raise UploadRejected("This is not a safetensors model (its header length does not fit the file).")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        header = None
    if not isinstance(header, dict):
        raise UploadRejected("This is not a safetensors model (its header is not a JSON object).")
    return ".safetensors"


DETECTORS = {
    "dicom": dicom,
    "zip": zip_archive,
    "csv": csv_table,
    "text": text_note,
    "image": image,
    "edf": edf,
    "wfdb_header": wfdb_header,
    "safetensors": safetensors,
}
