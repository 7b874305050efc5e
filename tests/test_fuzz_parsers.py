"""Property-based fuzzing (hypothesis) of every parser that reads a user's bytes: whatever comes in, the parser
either returns a result or raises the product's own user-facing error, never another exception.

Inputs are random bytes, random text shaped like the format, and valid seed files with bytes changed and cut off,
which reach much deeper into each parser than noise does. Example counts are small so each test takes seconds.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from medui.cli.common import CliError
from medui.imaging import ImageRefused, metadata_table, open_image
from medui.notes.documents import read_upload
from medui.registry import RegistryError
from medui.registry.weights import check_safetensors_header
from medui.signals.cgm import read_cgm
from medui.signals.cgm.samples import dexcom_csv, libreview_csv
from medui.signals.ecg import read_ecg
from medui.training import DatasetError, SpecError
from medui.training.spec import JobSpec
from medui.training.tasks import get_task
from medui.uploads import UploadRejected, check_upload

pytestmark = pytest.mark.timeout(300)
# The autouse MEDUI_HOME fixture is per test, not per example: parsers here do not write there. Fixed examples by
# default (CI stays repeatable); MEDUI_FUZZ_EXAMPLES=300 MEDUI_FUZZ_RANDOM=1 for a longer hunt.
FUZZ = settings(max_examples=int(os.environ.get("MEDUI_FUZZ_EXAMPLES", "60")), deadline=None,
                derandomize=os.environ.get("MEDUI_FUZZ_RANDOM") is None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@st.composite
def mutated(draw, seed: bytes, max_edits: int = 8) -> bytes:
    """The seed with a few bytes overwritten, a few inserted, and maybe cut short."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, max_edits))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if draw(st.booleans()) and data:
            data[position] = draw(st.integers(0, 255))
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def any_of(*seeds: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=600), *(mutated(s) for s in seeds))


def text_like(alphabet: str, *heads: str) -> st.SearchStrategy[bytes]:
    """Lines of the format's characters after one of its headers."""
    body = st.text(alphabet=alphabet, max_size=300)
    return st.builds(lambda head, text: (head + text).encode(), st.sampled_from(heads), body)


# ---------------------------------------------------------------------------------------------------- seeds


@cache
def ct_small() -> bytes:
    return Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()


@cache
def ecg_dicom() -> bytes:
    return Path(get_testdata_file("waveform_ecg.dcm", download=False)).read_bytes()


@cache
def small_edf() -> bytes:
    from edfio import Edf, EdfSignal

    signal = EdfSignal(np.sin(np.linspace(0, 60, 2500)), sampling_frequency=250, label="II", physical_dimension="mV")
    buffer = io.BytesIO()
    Edf([signal]).write(buffer)
    return buffer.getvalue()


@cache
def small_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("Pt denies chest pain. Hx of T2DM on metformin.")
    document.add_table(rows=1, cols=2).rows[0].cells[0].text = "aspirin"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@cache
def small_pdf() -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    figure.text(0.1, 0.5, "Pt denies chest pain.")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="pdf")
    return buffer.getvalue()


def head_lines(data: bytes, n: int = 30) -> bytes:
    return b"\n".join(data.splitlines()[:n]) + b"\n"


GENERIC_CGM = ("id,time,gl\n" + "".join(f"p1,2024-01-01 {h:02d}:{m:02d}:00,{100 + h + m}\n"
                                         for h in range(3) for m in range(0, 60, 15))).encode()
ECG_CSV = ("time,I,II\n" + "".join(f"{k / 250:.3f},{np.sin(k / 9):.3f},{np.cos(k / 7):.3f}\n"
                                   for k in range(600))).encode()
WFDB_HEADER = b"rec 2 250 600\nrec.dat 16 200/mV 16 0 0 0 0 I\nrec.dat 16 200/mV 16 0 0 0 0 II\n"


# ---------------------------------------------------------------------------------------------------- DICOM


@FUZZ
@given(data=any_of(ct_small()))
def test_dicom_read_decode_display_and_header_table(data):
    try:
        ds, decoded, shown = open_image(data, "fuzz.dcm")
    except ImageRefused:
        return
    assert shown.image.dtype == np.uint8 and shown.image.size
    metadata_table(ds)


# ---------------------------------------------------------------------------------------------------- ECG


def read_ecg_or_refuse(data: bytes, name: str, fs: float | None = None, extra: dict | None = None) -> None:
    try:
        record = read_ecg(data, name, fs, extra)
    except ValueError:  # UploadRejected and the readers' own refusals (medui.signals.ecg's documented contract)
        return
    assert record.signals.ndim == 2 and np.isfinite(record.signals).all() and record.fs > 0


@FUZZ
@given(data=st.one_of(any_of(ECG_CSV), text_like("0123456789.,-;\t \n#eE", "time,II\n", "", "I,II,III\n")),
       fs=st.sampled_from([None, 250.0, 1e9]))
def test_ecg_csv_reader(data, fs):
    read_ecg_or_refuse(data, "ecg.csv", fs)


@FUZZ
@given(header=st.one_of(mutated(WFDB_HEADER), text_like("rec.dat0123456789/ mVI\n#", "rec ")),
       dat=st.binary(max_size=3000))
def test_ecg_wfdb_reader(header, dat):
    read_ecg_or_refuse(header, "rec.hea", None, {"rec.dat": dat})


@FUZZ
@given(data=mutated(small_edf(), max_edits=12))
def test_ecg_edf_reader(data):
    read_ecg_or_refuse(data, "ecg.edf")


@FUZZ
@given(data=mutated(ecg_dicom()))
def test_ecg_dicom_reader(data):
    read_ecg_or_refuse(data, "ecg.dcm")


# ---------------------------------------------------------------------------------------------------- CGM


@FUZZ
@given(data=st.one_of(any_of(GENERIC_CGM, head_lines(dexcom_csv()), head_lines(libreview_csv(), 8)),
                      text_like("0123456789-:., \nabcp", "id,time,gl\n")),
       units=st.sampled_from([None, "mgdl", "mmol"]))
def test_cgm_readers(data, units):
    try:
        cgm = read_cgm(data, "export.csv", units)
    except ValueError:  # UploadRejected, and the readers' refusals (medui.signals.cgm's documented contract)
        return
    assert len(cgm.frame) >= 2 and cgm.frame["gl"].notna().all()


# ---------------------------------------------------------------------------------------------------- notes documents


NOTE_SEEDS = {
    "note.txt": b"Pt denies chest pain.\n",
    "batch.csv": b"text,patient,source\n\"Chest pain, denied.\",MRN-1,a\nT2DM,,b\n",
    "batch.jsonl": b'{"text": "Chest pain.", "patient": "MRN-1"}\n{"text": 3}\n[1]\n',
}


@FUZZ
@given(choice=st.sampled_from(["note.txt", "batch.csv", "batch.jsonl", "letter.docx", "letter.pdf"]),
       data=st.data(), replace=st.booleans())
def test_notes_document_readers(choice, data, replace):
    seed = {"letter.docx": small_docx(), "letter.pdf": small_pdf()}.get(choice) or NOTE_SEEDS[choice]
    raw = data.draw(any_of(seed))
    try:
        documents = read_upload(raw, choice, replace_errors=replace)
    except UploadRejected:
        return
    assert documents and all(isinstance(d.text, str) for d in documents)


# ---------------------------------------------------------------------------------------------------- training datasets


def read_dataset(task: str, name: str, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(raw)
        try:
            get_task(task).read(path, JobSpec(task=task, data=str(path), image_size=32, skip_bad_rows=True))
        except (DatasetError, SpecError):
            return


NER_JSONL = (b'{"text": "Pt denies chest pain.", "entities": [{"start": 10, "end": 20, "label": "PROBLEM"}]}\n'
             b'{"text": "metformin 500 mg", "entities": [{"start": 0, "end": 9, "label": "MEDICATION"}]}\n')
LABELS_CSV = b"file,label,x0,y0,x1,y1\na.png,nodule,1,1,5,5\nb.png,no finding,,,,\n"
PATH_LABEL_CSV = b"path,label\na.png,normal\nb.png,nodule\n"


@FUZZ
@given(data=st.one_of(any_of(NER_JSONL), text_like('{}[]":,0123456789 textentiesabl\n', '{"text": ')))
def test_ner_jsonl_dataset_reader(data):
    read_dataset("ner", "train.jsonl", data)


@FUZZ
@given(data=any_of(LABELS_CSV, PATH_LABEL_CSV))
def test_image_labels_csv_reader(data):
    read_dataset("image", "labels.csv", data)


# ---------------------------------------------------------------------------------------------------- risk input


@FUZZ
@given(raw=st.one_of(st.text(max_size=200), st.builds(json.dumps, st.dictionaries(
    st.sampled_from(["age", "sex", "chf", "hypertension", "diabetes", "stroke_tia", "vascular_disease"]),
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=8))))))
def test_risk_json_input(raw):
    from medui.cli.risk_cmd import read_inputs
    from medui.risk import calculate

    try:
        calculate("cha2ds2vasc", read_inputs(raw))
    except (CliError, ValueError):  # CliError for the JSON, RiskInputError (a ValueError) for the values
        return


# ---------------------------------------------------------------------------------------------------- safetensors


@cache
def small_safetensors() -> bytes:
    from safetensors.numpy import save

    return save({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})


@FUZZ
@given(data=any_of(small_safetensors()))
def test_safetensors_header_checks(data):
    try:
        check_upload(data, "model.safetensors", "safetensors")
    except UploadRejected:
        pass
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        path.write_bytes(data)
        try:
            check_safetensors_header(path)
        except RegistryError:
            pass
