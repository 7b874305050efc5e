"""The shared upload guard: sizes, content detection, safe names, and ZIP archives checked before extraction."""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from medui.uploads import (
    KINDS,
    ArchiveEntry,
    UploadKind,
    UploadRejected,
    check_upload,
    decode_text,
    extract_zip,
    inspect_zip,
)

MB = 1024**2
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
SAFE_NAME = re.compile(r"^[0-9a-f]{32}\.[a-z]+$")


@pytest.fixture(scope="module")
def ct_small() -> bytes:
    return Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in entries.items():
            zf.writestr(zipfile.ZipInfo(name), content, compress_type=compression)
    return buf.getvalue()


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    return make_zip({"zeros.bin": bytes(50 * MB)})  # ~50 KB compressed, ratio ~1000


def reject_message(data: bytes, kind: str, name: str = "upload") -> str:
    with pytest.raises(UploadRejected) as info:
        check_upload(data, name, kind)
    return str(info.value)


# --- sizes and kinds -------------------------------------------------------------------------------------------------


def test_kinds_and_their_limits():
    limits = {name: kind.max_bytes // MB for name, kind in KINDS.items()}
    assert limits == {
        "dicom": 512,
        "zip": 1024,
        "csv": 100,
        "text": 5,
        "image": 50,
        "edf": 200,
        "wfdb_header": 1,
        "safetensors": 2048,
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_empty_file_is_rejected(kind):
    assert reject_message(b"", kind) == "The file is empty."


def test_unknown_kind_is_rejected():
    assert "Unknown upload kind" in reject_message(b"abc", "spreadsheet")


def test_oversize_states_the_limit_in_mb(monkeypatch):
    monkeypatch.setitem(KINDS, "text", UploadKind("text", 1 * MB, "text file"))
    check_upload(b"a" * MB, "note.txt", "text")  # exactly at the limit is fine
    message = reject_message(b"a" * (2 * MB), "text")
    assert message == "The file is 2 MB, over the 1 MB limit for a text file."


# --- detection by content, never by name ------------------------------------------------------------------------------


def test_dicom_from_pydicom_test_data_is_accepted(ct_small):
    upload = check_upload(ct_small, "CT_small.dcm", "dicom")
    assert upload.kind == "dicom" and upload.size == len(ct_small) and upload.data == ct_small
    assert upload.sha256 == hashlib.sha256(ct_small).hexdigest()
    assert SAFE_NAME.match(upload.safe_name) and upload.safe_name.endswith(".dcm")
    assert upload.original_name == "CT_small.dcm"


def test_preambleless_dicom_is_parsed_and_accepted(ct_small):
    assert check_upload(ct_small[132:], "no_preamble", "dicom").safe_name.endswith(".dcm")


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [(PNG, "a PNG image"), (make_zip({"a.txt": b"x"}), "a ZIP archive"), (b"name,age\nx,1\n", "text")],
)
def test_wrong_content_with_a_dicom_extension_is_rejected(data, looks_like):
    assert reject_message(data, "dicom", "scan.dcm") == f"This is not a DICOM file (it looks like {looks_like})."


def test_unrecognisable_bytes_are_not_dicom():
    assert reject_message(bytes(range(256)) * 4, "dicom", "scan.dcm") == "This is not a DICOM file."


@pytest.mark.parametrize("magic", [b"MZ", b"\x7fELF"])
def test_executable_in_the_dicom_preamble_is_refused(ct_small, magic):
    polyglot = magic + ct_small[len(magic) :]
    assert reject_message(polyglot, "dicom") == "This DICOM file's preamble carries an executable; refusing it."


def test_image_extension_comes_from_the_content_not_the_name():
    upload = check_upload(JPEG, "photo.png", "image")
    assert upload.safe_name.endswith(".jpg") and SAFE_NAME.match(upload.safe_name)
    assert check_upload(PNG, "photo.jpg", "image").safe_name.endswith(".png")
    assert reject_message(b"GIF89a" + bytes(20), "image", "x.png") == (
        "This is not a PNG or JPEG image (it looks like a GIF image)."
    )


@pytest.mark.parametrize("name", ["../../etc/passwd.dcm", "scan<script>alert(1)</script>.dcm", "C:\\temp\\x.dcm"])
def test_safe_name_never_contains_the_original_name(ct_small, name):
    upload = check_upload(ct_small, name, "dicom")
    assert SAFE_NAME.match(upload.safe_name) and upload.safe_name.endswith(".dcm")
    stem = Path(name.replace("\\", "/")).stem
    assert stem not in upload.safe_name and "/" not in upload.safe_name
    assert upload.original_name == name  # kept for display only
    assert check_upload(ct_small, name, "dicom").safe_name != upload.safe_name


def test_zip_kind_checks_magic_and_structure():
    assert check_upload(make_zip({"a.csv": b"a,b\n"}), "data.zip", "zip").safe_name.endswith(".zip")
    assert check_upload(b"PK\x05\x06" + bytes(18), "empty.zip", "zip").safe_name.endswith(".zip")
    assert reject_message(PNG, "zip", "data.zip") == "This is not a ZIP archive (it looks like a PNG image)."
    assert reject_message(b"PK\x03\x04" + bytes(100), "zip") == "The ZIP archive is damaged."


# --- text and CSV -----------------------------------------------------------------------------------------------------


def test_utf16_csv_with_bom_is_accepted():
    upload = check_upload("id;name\n1;Zoë\n".encode("utf-16"), "table.csv", "csv")
    assert upload.safe_name.endswith(".csv")
    assert decode_text(upload.data) == "id;name\n1;Zoë\n"
    assert decode_text("\ufeffa,b".encode("utf-8")) == "a,b"  # BOM stripped


def test_csv_needs_a_delimiter_on_its_first_line():
    assert check_upload(b"\n\n a\tb\n1\t2\n", "t.tsv", "csv").safe_name.endswith(".csv")
    assert "no comma, semicolon or tab" in reject_message(b"just words\n", "csv", "table.csv")
    assert reject_message(b"\n \n", "csv") == "The CSV file has no rows."


def test_csv_field_over_10_mb_is_rejected():
    long_field = b"a,b\n1," + b"x" * (10 * MB + 1) + b"\n"
    assert reject_message(long_field, "csv") == "A CSV field is longer than 10 MB."
    # Commas inside a quoted field do not split it.
    quoted = b'a,b\n1,"' + b"x," * (5 * MB + 1) + b'"\n'
    assert reject_message(quoted, "csv") == "A CSV field is longer than 10 MB."
    # A file over 10 MB made of ordinary fields is fine.
    many = b"a,b\n" + (b"x" * 1000 + b"," + b"y" * 1000 + b"\n") * 5500
    assert len(many) > 10 * MB
    check_upload(many, "big.csv", "csv")


def test_text_with_nul_bytes_is_rejected():
    assert reject_message(b"note\x00\x01\x02", "text") == "This file contains NUL bytes (binary data), not text."


def test_text_must_be_utf8_without_guessing():
    assert reject_message("café".encode("cp1252"), "text") == (
        "This is not UTF-8 text: save it as UTF-8 and upload it again."
    )
    assert reject_message(PNG, "text", "note.txt") == "This is not a text file (it looks like a PNG image)."
    upload = check_upload("<script>alert(1)</script>".encode("utf-16"), "note.html", "text")
    assert upload.safe_name.endswith(".txt")
    assert decode_text(upload.data) == "<script>alert(1)</script>"  # returned as text; pages must not render it


def test_wfdb_header():
    good = b"# MIT-BIH record\n100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n"
    assert check_upload(good, "100.hea", "wfdb_header").safe_name.endswith(".hea")
    assert "no signal count" in reject_message(b"100 two 360\n", "wfdb_header")
    assert "no signal count" in reject_message(b"# only a comment\n", "wfdb_header")


def edf_header(header_bytes: bytes = b"512") -> bytes:
    head = b"0       " + b" " * 80 + b" " * 80 + b"01.01.20" + b"00.00.00" + header_bytes.ljust(8)
    return head.ljust(512, b" ") + bytes(100)


def test_edf():
    assert check_upload(edf_header(), "rec.edf", "edf").safe_name.endswith(".edf")
    assert "EDF header is damaged" in reject_message(edf_header(b"abc"), "edf")
    assert reject_message(PNG, "edf", "rec.edf") == "This is not an EDF recording (it looks like a PNG image)."


# --- safetensors and pickles ------------------------------------------------------------------------------------------


def test_safetensors_good_file_is_accepted():
    from safetensors.numpy import save

    data = save({"weight": np.zeros((4, 4), dtype=np.float32)})
    assert check_upload(data, "model.bin", "safetensors").safe_name.endswith(".safetensors")


def test_safetensors_oversized_or_broken_header_is_rejected():
    assert reject_message(struct.pack("<Q", 200 * MB) + b'{"a":1}', "safetensors") == (
        "The safetensors header is too large (over 100 MB)."
    )
    assert "header length does not fit" in reject_message(struct.pack("<Q", 1000) + b"{}", "safetensors")
    assert "not a JSON object" in reject_message(struct.pack("<Q", 9) + b"{not json", "safetensors")
    assert "not a JSON object" in reject_message(struct.pack("<Q", 10_002) + b"{" * 10_002, "safetensors")


@pytest.mark.parametrize(
    "payload", [pickle.dumps({"weight": [1.0, 2.0]}, protocol=4), make_zip({"archive/data.pkl": b"\x80\x02}q"})]
)
def test_pickled_models_are_refused(payload):
    assert reject_message(payload, "safetensors", "model.safetensors") == (
        "Pickled model files are refused: convert to safetensors."
    )


# --- ZIP archives -----------------------------------------------------------------------------------------------------


def test_inspect_lists_files_and_skips_directories():
    data = make_zip({"scans/": b"", "scans/a.dcm": b"x" * 10, "notes.txt": b"hi"})
    assert inspect_zip(data) == [ArchiveEntry("scans/a.dcm", 10), ArchiveEntry("notes.txt", 2)]


def test_zip_bomb_is_rejected_before_extraction(zip_bomb, tmp_path):
    assert len(zip_bomb) < 1 * MB
    with pytest.raises(UploadRejected, match=r"'zeros.bin' expands more than 200 times \(a zip bomb\)"):
        inspect_zip(zip_bomb)
    with pytest.raises(UploadRejected):
        extract_zip(zip_bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was created


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil.txt", "points outside the archive"),
        ("a/../../evil.txt", "points outside the archive"),
        ("/etc/passwd", "has an absolute path"),
        ("C:\\x", "has a Windows drive letter"),
        ("dir\\file.txt", "has a backslash"),
    ],
)
def test_path_traversal_is_rejected(name, problem, tmp_path):
    data = make_zip({"fine.txt": b"ok", name: b"pwned"})
    with pytest.raises(UploadRejected) as info:
        inspect_zip(data)
    assert str(info.value).startswith(f"ZIP entry '{name}' {problem}")
    with pytest.raises(UploadRejected):
        extract_zip(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_entry_with_an_empty_name_is_rejected():
    data = make_zip({"Q": b"data"}, zipfile.ZIP_STORED)
    assert data.count(b"Q") == 2  # local and central header
    with pytest.raises(UploadRejected, match="has an empty name"):
        inspect_zip(data.replace(b"Q", b"\x00"))  # zipfile cuts names at NUL


def test_entry_names_in_messages_are_sanitised_and_truncated():
    with pytest.raises(UploadRejected) as info:
        inspect_zip(make_zip({"../" + "\x1b[31m" + "x" * 200: b"1"}))
    message = str(info.value)
    assert "\x1b" not in message and "x" * 100 not in message and len(message) < 140


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("inner.zip", b"not even a zip"),
        ("data.bin", make_zip({"a.txt": b"x"})),
        ("data.bin", b"\x1f\x8b\x08\x00" + bytes(20)),
        ("data.bin", bytes(257) + b"ustar" + bytes(100)),
        ("scan.tar.GZ", b"x"),
    ],
)
def test_nested_archives_are_rejected_by_name_and_content(name, content):
    with pytest.raises(UploadRejected, match="is an archive inside the archive"):
        inspect_zip(make_zip({"ok.txt": b"ok", name: content}))


def test_symlink_entries_are_rejected():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(UploadRejected, match="'link' is a symbolic link"):
        inspect_zip(buf.getvalue())


def test_encrypted_entries_are_rejected():
    data = bytearray(make_zip({"secret.txt": b"x"}))
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x1  # general-purpose flag bit 0: encrypted
    with pytest.raises(UploadRejected, match="'secret.txt' is encrypted"):
        inspect_zip(bytes(data))


def test_too_many_entries_and_too_much_declared_data():
    data = make_zip({f"f{i}.txt": b"x" * 100 for i in range(11)})
    with pytest.raises(UploadRejected, match="has 11 entries; the limit is 10"):
        inspect_zip(data, max_entries=10)
    with pytest.raises(UploadRejected, match="would unpack to"):
        inspect_zip(data, max_total_bytes=1000)
    assert len(inspect_zip(data, max_entries=11, max_total_bytes=1100)) == 11


@pytest.mark.parametrize(
    "data", [b"PK\x03\x04garbage", b"PK\x05\x06" + bytes(6) + b"\x01\x00" + b"\xff" * 10, b"hello"]
)
def test_damaged_zip(data):
    with pytest.raises(UploadRejected, match="^The ZIP archive is damaged.$"):
        inspect_zip(data)


def test_extract_zip_writes_inside_dest(tmp_path):
    data = make_zip({"scans/": b"", "scans/a/1.dcm": b"one", "./notes.txt": b"two"})
    dest = tmp_path / "out"
    written = extract_zip(data, dest)
    assert written == [(dest / "scans/a/1.dcm").resolve(), (dest / "notes.txt").resolve()]
    assert [p.read_bytes() for p in written] == [b"one", b"two"]


def test_extract_zip_refuses_escaping_through_an_existing_symlink(tmp_path):
    dest, outside = tmp_path / "out", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "link").symlink_to(outside)
    with pytest.raises(UploadRejected, match="'link/x.txt' points outside"):
        extract_zip(make_zip({"link/x.txt": b"pwned"}), dest)
    assert not list(outside.iterdir())


def _lie_about_size(data: bytes, name: bytes, size: int) -> bytes:
    """Patch an entry's uncompressed size in both its local and central headers."""
    out = bytearray(data)
    for sig, name_at, len_at, size_at in ((b"PK\x03\x04", 30, 26, 22), (b"PK\x01\x02", 46, 28, 24)):
        pos = out.find(sig)
        while pos >= 0:
            (name_len,) = struct.unpack_from("<H", out, pos + len_at)
            if out[pos + name_at : pos + name_at + name_len] == name:
                struct.pack_into("<I", out, pos + size_at, size)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def test_lying_declared_size_is_caught_and_nothing_is_left_behind(tmp_path):
    honest = make_zip({"dir/first.txt": b"fine", "dir/big.bin": bytes(50_000)})
    lying = _lie_about_size(honest, b"dir/big.bin", 10_000)
    assert inspect_zip(lying)[1] == ArchiveEntry("dir/big.bin", 10_000)  # the lie passes inspection...
    dest = tmp_path / "out"
    with pytest.raises(UploadRejected):
        extract_zip(lying, dest, max_total_bytes=20_000)  # ...but not extraction
    assert not list(dest.iterdir())


def test_extraction_counts_real_bytes_and_cleans_up(tmp_path, monkeypatch):
    from medui.uploads import archives

    data = make_zip({"a/one.bin": bytes(3000), "a/b/two.bin": bytes(3000)})
    # Simulate declared sizes that lied undetected: extraction alone must stop at the limit.
    monkeypatch.setattr(
        archives, "inspect_zip", lambda data, **limits: [ArchiveEntry("a/one.bin", 1), ArchiveEntry("a/b/two.bin", 1)]
    )
    dest = tmp_path / "out"
    with pytest.raises(UploadRejected, match="unpacks to more than"):
        extract_zip(data, dest, max_total_bytes=4000)
    assert not list(dest.iterdir())


# --- property: never anything but a result or UploadRejected ----------------------------------------------------------

PREFIXES = [
    b"",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x80\x04",
    b"0       ",
    PNG[:8],
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xfe\xff",
    bytes(128) + b"DICM",
    b"\x08\x00\x05\x00CS\x0a\x00",
    struct.pack("<Q", 16) + b"{",
    b"MZ",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(KINDS)), prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=2048))
def test_any_bytes_either_pass_or_are_rejected(kind, prefix, body):
    data = prefix + body
    try:
        upload = check_upload(data, "x", kind)
    except UploadRejected as exc:
        message = str(exc)
        assert message and len(message) < 200 and "\n" not in message
    else:
        assert upload.size == len(data) and SAFE_NAME.match(upload.safe_name)
    try:
        inspect_zip(data)
    except UploadRejected:
        pass
