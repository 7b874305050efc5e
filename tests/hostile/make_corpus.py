"""Build the hostile-input corpus into a folder: `python tests/hostile/make_corpus.py OUT` or `build(OUT)`.

Deterministic (no randomness, fixed ZIP timestamps) and quick (about a second): large files are runs of one byte,
made in memory. Small hand-written files live beside this script in files/ and are copied in as they are.
"""

from __future__ import annotations

import io
import pickle
import shutil
import struct
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MB = 1024**2
ZIP_TIME = (2024, 1, 1, 0, 0, 0)
# A tiny Windows executable stub: what a polyglot hides in the DICOM preamble.
EXE_STUB = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"This program cannot be run in DOS mode."


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in entries.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_TIME), content, compress_type=compression)
    return buf.getvalue()


def _ct_small() -> bytes:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()


def _huge_dimensions(ct: bytes) -> bytes:
    """CT_small claiming 65535×65535 pixels in 1000 frames (8 TB): must be refused before any allocation."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(ct))
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 1000
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


class _Payload:
    """Unpickling this would run a shell command: the model-file loader must never get that far."""

    def __reduce__(self):
        return (__import__("os").system, ("echo pwned > /tmp/medui-hostile-pwned",))


def _torch_like_pickle() -> bytes:
    return pickle.dumps({"state_dict": _Payload()}, protocol=2)


def _safetensors_oversized_header() -> bytes:
    # Declares a 200 MB JSON header; a reader that trusts it would allocate before it parses.
    return struct.pack("<Q", 200 * MB) + b'{"__metadata__":{}}' + bytes(64)


def _edf_truncated() -> bytes:
    header = b"0       " + b" " * 176 + b"512     " + b" " * 72  # declares a 512-byte header, holds 264 bytes
    return header


def build(out: Path, large: bool = True) -> dict[str, Path]:
    """Write every hostile file into `out`; returns {corpus name: path}. `large=False` skips the 100 MB field."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ct = _ct_small()
    generated: dict[str, bytes] = {
        "empty": b"",
        "png_named_csv.csv": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "png_named_dcm.dcm": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "gzip_named_txt.txt": b"\x1f\x8b\x08\x00" + bytes(40),
        "text_named_dcm.dcm": b"name,age\nx,1\n",
        "text_named_edf.edf": b"this is not an EDF recording\n",
        "text_named_docx.docx": b"plain text pretending to be Word\n",
        "text_named_pdf.pdf": b"plain text pretending to be a PDF\n",
        "text_named_zip.zip": b"plain text pretending to be a zip\n",
        "text_named_npz.npz": b"plain text pretending to be numpy\n",
        "polyglot.dcm": EXE_STUB + ct[len(EXE_STUB):],
        "truncated.dcm": ct[: len(ct) // 2],
        "truncated_header.dcm": ct[:200],
        "truncated.zip": _zip({"a.dcm": ct})[:3000],
        "truncated.edf": _edf_truncated(),
        "truncated.pdf": b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
        "truncated.docx": _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document"})[:120],
        "huge_dimensions.dcm": _huge_dimensions(ct),
        "bomb.zip": _zip({"scan/zeros.dcm": bytes(60 * MB)}),
        "nested.zip": _zip({"inner.zip": _zip({"a.dcm": ct})}),
        "nested_renamed.zip": _zip({"scan.dcm": _zip({"a.dcm": ct})}),
        "zip_slip.zip": _zip({"../../evil.dcm": ct}),
        "zip_absolute.zip": _zip({"/etc/evil.dcm": ct}),
        "nul.txt": b"Patient seen today.\x00\x00\x00 diabetes",
        "note_5mb_plus.txt": b"a" * (5 * MB) + b"b",
        "note_5mb.txt": (b"Chest pain. " * (5 * MB // 12 + 1))[: 5 * MB],
        "safetensors_oversized.safetensors": _safetensors_oversized_header(),
        "pickle_model.safetensors": _torch_like_pickle(),
        "pickle_model.bin": _torch_like_pickle(),
        "utf16_bom_cgm.csv": _cgm_csv().encode("utf-16"),
    }
    if large:  # one field of 100 MB (decimal): under the 100 MiB CSV size limit, so the field check must catch it
        generated["field_100mb.csv"] = b"id,time,gl\nsubject," + b"x" * 100_000_000 + b",100\n"
    paths = {}
    for name, data in generated.items():
        (out / name).write_bytes(data)
        paths[name] = out / name
    for small in sorted(p for p in (HERE / "files").iterdir() if p.suffix != ".md"):
        shutil.copyfile(small, out / small.name)
        paths[small.name] = out / small.name
    return paths


def _cgm_csv() -> str:
    """Two days of 15-minute readings in the generic id,time,gl layout."""
    rows = ["id,time,gl"]
    for k in range(2 * 96):
        day, minute = divmod(k * 15, 1440)
        rows.append(f"p1,2024-01-{1 + day:02d} {minute // 60:02d}:{minute % 60:02d}:00,{110 + (k * 7) % 60}")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    for name, path in build(target).items():
        print(f"{path.stat().st_size:>12,}  {name}")
