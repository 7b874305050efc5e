"""Hostile files through every upload path and every file-reading CLI command (issue 8).

The corpus comes from tests/hostile/make_corpus.py (small hand-written files in tests/hostile/files/, the rest,
including a 100 MB CSV field and a zip bomb, generated into a temporary folder once per session). Each case
expects a specific message, no traceback and no hang (every test is time-bounded), and a result stored before the
hostile input is still there after it.

Pages are driven through AppTest with the real upload widget (streamlit 1.67's FileUploader.upload). The 100 MB
field goes through the exact function the page calls with the uploaded bytes (read_cgm, read_ecg, read_upload,
monitor.save_upload), since AppTest would copy 100 MB through its message layer for every rerun.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

import pytest

from medui import auth, records
from medui.notes import export
from medui.notes.documents import read_upload
from medui.signals.cgm import read_cgm
from medui.signals.ecg import read_ecg
from medui.training import monitor
from medui.uploads import UploadRejected

sys.path.insert(0, str(Path(__file__).resolve().parent / "hostile"))
from make_corpus import build  # noqa: E402

pytestmark = pytest.mark.timeout(120)
STORED = {"scores": {"cha2ds2vasc": {"points": 3}}, "note": "stored before the hostile input"}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("hostile-corpus"))


@pytest.fixture(autouse=True)
def stored_result(medui_home):
    """A saved analysis before each hostile input; it must be unchanged after it."""
    analysis_id = records.save_analysis("risk", STORED, created_by="dr.before", input_sha256="0" * 64,
                                        patient="MRN-KEEP")
    yield analysis_id
    kept = records.get_analysis(analysis_id)
    assert kept is not None and kept.result == STORED and kept.patient == "MRN-KEEP"


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and 'File "' not in text


# ---------------------------------------------------------------------------------------------------- CLI

EMPTY = "The file is empty."
NOT_CSV_PNG = "This is not a CSV table (it looks like a PNG image)."
NUL = "contains NUL bytes"
LONG_FIELD = "A CSV field is longer than 10 MB."
NOT_ECG = "This is not an ECG recording (CSV, WFDB, EDF or DICOM)"
POLYGLOT = "This DICOM file's preamble carries an executable; refusing it."
BOMB = "expands more than 200 times (a zip bomb)"
NESTED = "is an archive inside the archive"
SLIP = "points outside the archive (..)"
DAMAGED_ZIP = "The ZIP archive is damaged."
PICKLE = "refused: convert it to safetensors"

CLI_CASES = [  # (command before the path, corpus file, message fragment)
    (["cgm"], "empty", EMPTY),
    (["cgm"], "png_named_csv.csv", NOT_CSV_PNG),
    (["cgm"], "gzip_named_txt.txt", "This is not a CSV table (it looks like a gzip archive)."),
    (["cgm"], "polyglot.dcm", "This is not a CSV table (it looks like a DICOM file)."),
    (["cgm"], "nul.txt", NUL),
    (["cgm"], "field_100mb.csv", LONG_FIELD),
    (["cgm"], "formula_notes.csv", "Not a recognised CGM export"),
    (["cgm"], "safetensors_oversized.safetensors", "This is not UTF-8 text"),
    (["ecg"], "empty", EMPTY),
    (["ecg"], "png_named_csv.csv", NOT_ECG + ": it looks like a PNG image."),
    (["ecg"], "polyglot.dcm", POLYGLOT),
    (["ecg"], "truncated.dcm", "This DICOM file holds no readable waveform"),
    (["ecg"], "truncated.edf", "The EDF header is damaged"),
    (["ecg"], "bomb.zip", NOT_ECG + ": it looks like a ZIP archive."),
    (["ecg"], "nul.txt", NOT_ECG),
    (["ecg"], "field_100mb.csv", LONG_FIELD),
    (["ecg"], "xss_note.txt", "This is not a CSV table of ECG samples"),
    (["ecg"], "pickle_model.bin", "it looks like a pickled Python object"),
    (["dicom"], "empty", EMPTY),
    (["dicom"], "png_named_dcm.dcm", "This is not a DICOM file (it looks like a PNG image)."),
    (["dicom"], "polyglot.dcm", POLYGLOT),
    (["dicom"], "truncated.dcm", "The pixel data is truncated"),
    (["dicom"], "truncated_header.dcm", "This DICOM file has no pixel data"),
    (["dicom"], "huge_dimensions.dcm", "The header declares 65535×65535×1000 frames"),
    (["dicom"], "bomb.zip", BOMB),
    (["dicom"], "nested.zip", NESTED),
    (["dicom"], "nested_renamed.zip", NESTED),
    (["dicom"], "zip_slip.zip", SLIP),
    (["dicom"], "zip_absolute.zip", "has an absolute path"),
    (["dicom"], "truncated.zip", DAMAGED_ZIP),
    (["dicom"], "nul.txt", "This is not a DICOM file."),
    (["notes"], "empty", EMPTY),
    (["notes"], "png_named_dcm.dcm", "This is not a text file (it looks like a PNG image)."),
    (["notes"], "polyglot.dcm", "This is not a text file (it looks like a DICOM file)."),
    (["notes"], "nul.txt", NUL),
    (["notes"], "note_5mb_plus.txt", "over the 5 MB limit for a text note"),
    (["notes"], "field_100mb.csv", LONG_FIELD),
    (["notes"], "text_named_docx.docx", "This is not a Word document (it looks like text)."),
    (["notes"], "truncated.docx", DAMAGED_ZIP),
    (["notes"], "truncated.pdf", "This PDF cannot be read (it is damaged)."),
    (["notes"], "bomb.zip", BOMB),
    (["models", "import", "--task", "ner"], "safetensors_oversized.safetensors", "invalid safetensors header"),
    (["models", "import", "--task", "ner"], "pickle_model.safetensors", "holds a pickle payload, " + PICKLE),
    (["models", "import", "--task", "ner"], "pickle_model.bin", PICKLE),
    (["models", "import", "--task", "ner"], "empty", "import a Hugging Face folder or a .safetensors file"),
    (["risk", "cha2ds2vasc", "--input"], "empty", "--input is not valid JSON"),
    (["risk", "cha2ds2vasc", "--input"], "png_named_csv.csv", "is not UTF-8 text"),
    (["risk", "cha2ds2vasc", "--input"], "utf16_bom_cgm.csv", "is not UTF-8 text"),
    (["risk", "cha2ds2vasc", "--input"], "nul.txt", "--input is not valid JSON"),
    (["train", "--task", "ner", "--data"], "empty", "ner datasets are JSONL"),
    (["train", "--task", "ner", "--data"], "bomb.zip", BOMB),
    (["train", "--task", "ner", "--data"], "zip_slip.zip", SLIP),
    (["train", "--task", "ner", "--data"], "nul.txt", NUL),
    (["train", "--task", "ecg", "--data"], "text_named_npz.npz", "not an .npz file (NumPy's zip of arrays)"),
]


def _argv(command: list[str], path: Path) -> list[str]:
    if command[0] == "risk":
        return [*command, f"@{path}"]
    if command[0] == "models":  # models import PATH --task ...
        return [*command[:2], str(path), *command[2:]]
    return [*command, str(path)]


@pytest.mark.parametrize(("command", "name", "fragment"), CLI_CASES,
                         ids=[f"{' '.join(c[:2])}-{n}" for c, n, _ in CLI_CASES])
def test_cli_refuses_hostile_file(cli, corpus, shipped_models, command, name, fragment):
    code, out, err = cli(*_argv(command, corpus[name]))
    no_traceback(out, err)
    assert code == 1
    if command[0] == "dicom" and fragment in out:  # a file it could not show is a row of the table, exit code 1
        return
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], err
    assert all(len(line) < 400 for line in errors)


def test_cli_hostile_strings_in_arguments(cli, shipped_models):  # no shipped model: dicom loads none
    for argv, fragment in [
        (["jobs", "show", "../../etc/passwd"], "no job"),
        (["models", "show", "<script>alert(1)</script>"], "invalid model name"),
        (["users", "add", "--username", "a\x00b", "--password", "Correct-Horse-9x", "--role", "clinician"],
         "Username must be"),
        (["risk", "cha2ds2vasc", "--input", '{"age": "=1+1"}'], "missing input for cha2ds2vasc"),
        (["imaging", "synth", "--n", "0", "--seed", "0", "--out", "x"], "n must be a positive whole number"),
        (["imaging", "synth", "--n", "1", "--seed", "0", "--out", "/dev/null/x"], "cannot create folder"),
        (["jobs", "cancel", "<img src=x>"], "no job <img src=x>"),
        (["models", "promote", "risk-chd", "../../1"], "no model named risk-chd"),
        (["cgm", "/"], "Is a directory"),
        (["dicom", "/nonexistent"], "no such file or folder"),
    ]:
        code, out, err = cli(*argv)
        no_traceback(out, err)
        assert code == 1 and err.startswith("error: ") and fragment in err and len(err.splitlines()) == 1, err


def test_cli_dicom_on_a_folder_of_hostile_files_reports_each_one(cli, corpus, shipped_models):
    import json

    code, out, err = cli("dicom", str(corpus["empty"].parent), "--json")
    no_traceback(out, err)
    rows = json.loads(out)
    assert code == 1 and {Path(r["source"]).name for r in rows} == set(corpus)  # one row per file
    assert all(r.get("error") for r in rows)  # none of them is an image it can show


def test_cli_utf16_bom_csv_is_read(cli, corpus):
    code, out, err = cli("cgm", str(corpus["utf16_bom_cgm.csv"]), "--json")
    no_traceback(out, err)
    assert code == 0 and '"id": "p1"' in out


# ---------------------------------------------------------------------------------------------------- functions the pages call


def test_page_functions_refuse_the_100mb_field(corpus):
    data = corpus["field_100mb.csv"].read_bytes()
    for call in (lambda: read_cgm(data, "cgm.csv"), lambda: read_ecg(data, "ecg.csv", 250.0),
                 lambda: read_upload(data, "notes.csv")):
        with pytest.raises(UploadRejected, match=re.escape(LONG_FIELD)):
            call()
    with pytest.raises(monitor.UploadError, match=re.escape(LONG_FIELD)):
        monitor.save_upload(data, "labels.csv", "image")


def test_utf16_bom_csv_reads_like_utf8_everywhere(corpus):
    utf16 = corpus["utf16_bom_cgm.csv"].read_bytes()
    utf8 = utf16.decode("utf-16").encode("utf-8")
    assert read_cgm(utf16, "cgm.csv").frame.equals(read_cgm(utf8, "cgm.csv").frame)
    ecg = "time,II\n" + "".join(f"{k / 250:.3f},{0.1 * ((k % 50) == 0)}\n" for k in range(2000))
    assert (read_ecg(ecg.encode("utf-16"), "ecg.csv").signals == read_ecg(ecg.encode(), "ecg.csv").signals).all()
    batch = "text,patient\nChest pain.,MRN-1\n"
    assert read_upload(batch.encode("utf-16"), "b.csv") == read_upload(batch.encode(), "b.csv")


@pytest.mark.parametrize(("task", "name", "fragment"), [
    ("image", "bomb.zip", BOMB), ("ecg", "nested.zip", NESTED), ("image", "zip_slip.zip", SLIP),
    ("ner", "truncated.zip", DAMAGED_ZIP), ("ner", "nul.txt", NUL), ("mlm", "note_5mb_plus.txt", "over the 5 MB"),
    ("ecg", "pickle_model.bin", "This is not an .npz file"), ("image", "png_named_csv.csv", NOT_CSV_PNG),
    ("ner", "empty", EMPTY),
])
def test_training_upload_refuses_hostile_datasets(corpus, task, name, fragment):
    suffix = {"pickle_model.bin": ".npz", "empty": ".jsonl"}.get(name, Path(name).suffix)
    with pytest.raises(monitor.UploadError, match=re.escape(fragment)):
        monitor.save_upload(corpus[name].read_bytes(), f"dataset{suffix}", task)


# ---------------------------------------------------------------------------------------------------- CSV exports


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def test_notes_csv_exports_neutralise_formula_cells(corpus):
    documents = read_upload(corpus["formula_notes.csv"].read_bytes(), "formula_notes.csv")
    assert [d.source[0] for d in documents] == ["=", "@"] and [d.patient[0] for d in documents] == ["+", "-"]
    results = []
    for d in documents:
        entity = {"start": 0, "end": 8, "text": d.text[:8], "label": "PROBLEM", "assertion": "present",
                  "historical": False, "section": "-x", "codes": [{"system": "ICD-10-CM", "code": "=1+1",
                                                                   "display": "@cmd", "score": 0.5}]}
        medication = {"medication": {**entity, "label": "MEDICATION"}, "dosage": {**entity, "text": "-5 mg"},
                      "route": None, "frequency": None,
                      "code": {"generic": "+x", "drugbank_id": "=D", "mesh_id": "@M", "matched": "x"}}
        results.append({"source": d.source, "patient": d.patient, "text": d.text, "entities": [entity],
                        "medications": [medication]})
    for text in (export.entities_csv(results), export.medications_csv(results)):
        cells = _cells(text)
        assert cells and not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
        assert "'=HYPERLINK(" in text and "'@SUM(" in text


# ---------------------------------------------------------------------------------------------------- pages (AppTest)


def page_errors(at) -> list[str]:
    """The page's error texts with markdown escapes removed (messages quoting a file are escaped on purpose)."""
    assert not at.exception, [e.value for e in at.exception]
    return [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]


def upload(at, files: list[tuple[str, bytes]]):
    for name, data in files:
        at.file_uploader[0].upload(name, data)
    return at.run()


# The upload widget itself refuses a suffix outside its `type` list, so those files go up under an allowed name
# (content decides the type anyway): a zip bomb as a Word document, a DICOM polyglot as a .txt note.
UPLOAD_NAMES = {"glucose.py": {"empty": "empty.csv"},
                "notes.py": {"empty": "empty.txt", "bomb.zip": "bomb.docx", "polyglot.dcm": "polyglot.txt"}}


PAGE_CASES = [  # (page, corpus files uploaded together, message fragment)
    ("glucose.py", ["empty"], EMPTY),
    ("glucose.py", ["png_named_csv.csv"], NOT_CSV_PNG),
    ("glucose.py", ["nul.txt"], NUL),
    ("glucose.py", ["formula_notes.csv"], "Not a recognised CGM export"),
    ("ecg.py", ["empty"], EMPTY),
    ("ecg.py", ["polyglot.dcm"], POLYGLOT),
    ("ecg.py", ["truncated.edf"], "The EDF header is damaged"),
    ("ecg.py", ["png_named_csv.csv"], "it looks like a PNG image"),
    ("notes.py", ["empty"], EMPTY),
    ("notes.py", ["nul.txt"], NUL),
    ("notes.py", ["note_5mb_plus.txt"], "over the 5 MB limit"),
    ("notes.py", ["truncated.docx"], DAMAGED_ZIP),
    ("notes.py", ["bomb.zip"], BOMB),
    ("notes.py", ["polyglot.dcm"], "it looks like a DICOM file"),
    ("imaging.py", ["huge_dimensions.dcm"], "The header declares 65535×65535×1000 frames"),
    ("imaging.py", ["truncated.dcm"], "The pixel data is truncated"),
]
IMAGING_REFUSALS = [("empty", EMPTY), ("polyglot.dcm", POLYGLOT), ("bomb.zip", BOMB), ("nested.zip", NESTED),
                    ("zip_slip.zip", SLIP), ("zip_absolute.zip", "has an absolute path"),
                    ("truncated.zip", DAMAGED_ZIP), ("png_named_dcm.dcm", "it looks like a PNG image")]


@pytest.mark.parametrize(("page", "names", "fragment"), PAGE_CASES, ids=[f"{p}-{n[0]}" for p, n, _ in PAGE_CASES])
def test_page_shows_a_specific_error(clinician_page, corpus, shipped_models, page, names, fragment):
    renamed = UPLOAD_NAMES.get(page, {})
    at = upload(clinician_page(page).run(), [(renamed.get(n, n), corpus[n].read_bytes()) for n in names])
    assert any(fragment in e for e in page_errors(at)), page_errors(at)


def test_imaging_page_lists_every_refused_file(clinician_page, corpus, shipped_models):
    at = upload(clinician_page("imaging.py").run(), [(n, corpus[n].read_bytes()) for n, _ in IMAGING_REFUSALS])
    assert page_errors(at) == ["None of the files could be displayed."]
    warnings = [re.sub(r"\\(.)", r"\1", w.value) for w in at.warning]
    for (name, fragment), warning in zip(IMAGING_REFUSALS, warnings, strict=True):
        assert warning.startswith(name) and fragment in warning


@pytest.fixture
def admin_training_page():
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    auth.create_user("root.admin", "Correct-Horse-9", "admin", actor="test")
    PagesManager.uses_pages_directory = False
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "admin_training.py"),
                           default_timeout=120)
    at.session_state["medui_token"] = auth.start_session("root.admin")
    return at


@pytest.mark.parametrize(("task", "name", "fragment"), [
    ("ner", "nul.txt", NUL), ("ner", "bomb.zip", BOMB), ("image", "png_named_csv.csv", NOT_CSV_PNG),
    ("ner", "zip_slip.zip", SLIP),
])
def test_admin_training_page_refuses_hostile_datasets(admin_training_page, corpus, task, name, fragment):
    at = admin_training_page.run()
    at.selectbox(key="tr_task").set_value(task).run()
    at.radio(key="tr_source").set_value("Upload a dataset").run()
    at = upload(at, [(name, corpus[name].read_bytes())])
    assert any(fragment in e for e in page_errors(at)), page_errors(at)
    assert not any(b.label == "Launch training" and not b.disabled for b in at.button)


# ---------------------------------------------------------------------------------------------------- note markup


@pytest.fixture
def fake_extractor(monkeypatch):
    """The notes extractor at its boundary: one PROBLEM entity on the first 'chest pain', no model needed."""
    def iter_extract(texts, *, model=None, sources=None, progress=None):
        for text, source in zip(texts, sources or [None] * len(texts)):
            start = text.find("chest pain")
            yield {"source": source, "entities": [{"start": start, "end": start + 10, "text": "chest pain",
                                                   "label": "PROBLEM", "assertion": "absent", "historical": False,
                                                   "section": None, "codes": []}] if start >= 0 else [],
                   "medications": [], "model": {"name": "notes-ner", "version": "1"}, "vocabularies": {},
                   "chars_total": len(text), "chars_processed": len(text)}

    monkeypatch.setattr("medui.notes.extract.load_model", lambda version=None: object())
    monkeypatch.setattr("medui.notes.extract.iter_extract", iter_extract)


RAW_TAG = re.compile(r"<\s*(script|img)\b", re.IGNORECASE)


def test_note_markup_is_shown_escaped_never_as_html(clinician_page, corpus, fake_extractor):
    note = corpus["xss_note.txt"].read_bytes()
    at = upload(clinician_page("notes.py").run(), [("<img src=x onerror=alert(1)>.txt", note)])
    next(b for b in at.button if b.label == "Analyse").click().run()
    assert not at.exception
    html = [e.proto.body for e in at.get("html")]
    assert any("&lt;script&gt;alert(" in body for body in html), "the note is not shown"
    assert not any(RAW_TAG.search(body) for body in html)
    for element in at.markdown:  # markdown that may carry HTML must not carry the note's tags
        assert not (element.allow_html and RAW_TAG.search(element.value)), element.value


def test_five_megabyte_note_is_accepted_not_truncated(corpus):
    data = corpus["note_5mb.txt"].read_bytes()
    [document] = read_upload(data, "note.txt")
    assert len(document.text) == len(data)


SCRIPT_ID = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"


def hostile_cgm() -> bytes:
    from make_corpus import _cgm_csv

    return _cgm_csv().replace("p1,", f'"{SCRIPT_ID}",').encode()


def test_glucose_page_and_agp_report_escape_a_hostile_subject_id(clinician_page):
    from medui.signals.cgm import analyse, metric_table
    from medui.signals.cgm.agp import agp_figure, daily_figure, ranges_figure, report_html

    at = upload(clinician_page("glucose.py").run(), [("export.csv", hostile_cgm())])
    assert not at.exception and not at.error
    assert at.selectbox(key="glucose_subject").value == SCRIPT_ID  # shown as the typed text, in a widget
    assert not any(RAW_TAG.search(e.proto.body) for e in at.get("html"))
    assert not any(m.allow_html and RAW_TAG.search(m.value) for m in at.markdown)
    cgm = read_cgm(hostile_cgm(), "export.csv")  # the report the page offers for download, built as it builds it
    subject = analyse(cgm)["subjects"][0]
    rows = cgm.frame[cgm.frame["id"] == subject["id"]]
    report = report_html(subject["id"], metric_table(subject["metrics"], cgm.units),
                         [ranges_figure(subject["metrics"]), agp_figure(rows, cgm.units),
                          daily_figure(rows, cgm.units)], cgm.notes)
    assert "&lt;script&gt;alert(1)" in report and not re.search(r"<script>alert|<img src=x", report)


# ---------------------------------------------------------------------------------------------------- tampered model


@pytest.fixture
def tampered_risk_model(shipped_models) -> Path:
    """The shipped risk-chd model with one weight byte changed (same size): its manifest sha256 no longer matches."""
    import shutil

    target = shipped_models / "risk-chd" / "1"
    shutil.copytree(Path(__file__).resolve().parent.parent / "models" / "risk-chd" / "1", target)
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    return target


SHA_MISMATCH = "file model.safetensors does not match its manifest sha256"


def test_tampered_model_is_refused_by_the_cli(cli, tampered_risk_model):
    for argv in (["models", "verify", "risk-chd"], ["risk", "model", "--input", '{"age": 50}']):
        code, out, err = cli(*argv)
        no_traceback(out, err)
        assert code == 1 and err.startswith("error: ") and SHA_MISMATCH in err and len(err.splitlines()) == 1


def test_tampered_model_is_refused_by_the_risk_page_which_keeps_working(clinician_page, tampered_risk_model):
    at = clinician_page("risk.py").run()
    assert not at.exception
    assert any("The learned model is not available" in w.value and SHA_MISMATCH in w.value for w in at.warning)
