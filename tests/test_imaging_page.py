"""The Imaging page through AppTest (samples → image, windowing, reveal, export) and load_uploads on bad inputs."""

import io
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from medui import audit
from medui.imaging.phantom import phantom_dataset
from medui.imaging.samples import radiograph_path
from medui.imaging.uploads import load_uploads


@pytest.fixture
def page(clinician_page, shipped_models):
    """The viewer without a findings model (empty shipped root): tests/test_imaging_overlay_page.py covers that."""
    return clinician_page("imaging.py")


def caption(at: AppTest) -> str:
    return at.image[0].captions[0].replace("\\", "")


def test_without_input_the_page_asks_for_one(page):
    page.run()
    assert not page.exception and page.info[0].value.startswith("Upload DICOM files")
    statement = page.caption[0].value
    assert "synthetic phantom radiographs only" in statement and "not for clinical use" in statement


def test_phantom_sample_renders_and_windows(page, load_sample):
    at = load_sample(page, "Phantom")
    assert not at.exception and not at.error and len(at.image) == 1
    assert caption(at).startswith("CR · MONOCHROME") and "(header)" in caption(at)
    assert len(at.selectbox(key="imaging_study").options) == 6  # each phantom is its own study
    at.selectbox(key="imaging_window").set_value("lung").run()
    assert not at.exception and "C -600 / W 1500 (lung)" in caption(at)
    at.checkbox(key="imaging_custom").check().run()
    at.number_input(key="imaging_centre").set_value(2000.0).run()
    assert not at.exception and "C 2000 / W 400" in caption(at)
    assert at.dataframe[0].value["value"].tolist()[:2] == ["***", "***"]  # PatientName, PatientID masked


def test_real_radiograph_renders(page, load_sample):
    if radiograph_path() is None:
        pytest.skip("pydicom-data's RG1_UNCR.dcm is not installed")
    at = load_sample(page, "Chest radiograph")
    assert not at.exception and not at.error and len(at.image) == 1
    assert caption(at).startswith("CR · MONOCHROME1 · Explicit VR Little Endian · decoder pydicom")


def test_reveal_is_audited_and_export_offers_a_download(page, load_sample):
    at = load_sample(page, "Phantom")
    at.button(key="imaging_reveal").click().run()
    assert not at.exception and "PHANTOM^0000" in at.dataframe[1].value["value"].tolist()
    assert [e["action"] for e in audit.events(actor="dr.grey", action="phi_reveal")] == ["phi_reveal"]
    assert [d.label for d in at.get("download_button")] == ["Download this view (PNG, no header)"]
    at.button(key="imaging_export").click().run()
    assert not at.exception
    assert "Download de-identified series (ZIP)" in [d.label for d in at.get("download_button")]
    assert audit.events(actor="dr.grey", action="export")[0]["detail"] == {"kind": "dicom_deid", "files": 1}


def dicom_bytes(index: int, study_of: int | None = None) -> bytes:
    ds, _ = phantom_dataset(3, index, 64)
    if study_of is not None:  # put it in the same study and series as phantom `study_of`
        first, _ = phantom_dataset(3, study_of, 64)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, first.SeriesInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            zf.writestr(zipfile.ZipInfo(name), content)
    return buf.getvalue()


def test_zip_of_a_series_with_a_stray_text_file():
    data = make_zip({"s/a.dcm": dicom_bytes(0, 0), "s/b.dcm": dicom_bytes(1, 0), "s/readme.txt": b"hello\n"})
    studies, refused = load_uploads([("series.zip", data)])
    assert len(studies) == 1 and len(studies[0].series) == 1 and len(studies[0].series[0].instances) == 2
    assert refused == [("series.zip/s/readme.txt", "This is not a DICOM file (it looks like text).")]


def test_single_non_dicom_file_is_refused_in_words():
    studies, refused = load_uploads([("scan.dcm", b"%PDF-1.7 not an image"), ("ok.dcm", dicom_bytes(2))])
    assert len(studies) == 1
    assert len(refused) == 1 and refused[0][0] == "scan.dcm" and refused[0][1].startswith("This is not a DICOM file")


def test_zip_slip_is_refused():
    studies, refused = load_uploads([("evil.zip", make_zip({"../../etc/x.dcm": dicom_bytes(0)}))])
    assert studies == [] and refused == [("evil.zip", "ZIP entry '../../etc/x.dcm' points outside the archive (..).")]
