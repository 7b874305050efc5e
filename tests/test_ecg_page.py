"""The ECG page through AppTest, on pydicom's real 12-lead recording."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from medui import records

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def page(clinician_page):
    return clinician_page("ecg.py", timeout=120)


@pytest.fixture
def af_page(routed_clinician_page) -> AppTest:
    """The ECG page reached through app.py (so links to other pages resolve) with the synthetic AF sample."""
    at = routed_clinician_page("pages/ecg.py")
    next(b for b in at.button if b.label.startswith("Load sample: Atrial fibrillation")).click().run()
    return at


def test_without_input_the_page_asks_for_one(page):
    page.run()
    assert not page.exception
    assert page.info[0].value == "Upload a recording, or load a sample."


def test_real_12_lead_sample_is_measured_plotted_and_saved(page):
    page.run()
    next(b for b in page.button if b.label.startswith("Load sample")).click().run()
    assert not page.exception
    metrics = {m.label: m.value for m in page.metric}
    assert 58 <= float(metrics["Heart rate"].split()[0]) <= 64  # 61.1 bpm by hand from lead II (see test_ecg.py)
    assert len(page.get("plotly_chart")) == 3  # trace, beat overlay, tachogram
    page.text_input(key="ecg_patient").input("bed-9").run()
    next(b for b in page.button if b.label == "Save analysis").click().run()
    stored = records.latest_for_patient("bed-9", "ecg")
    assert stored.result["analysed_lead"] == "II" and len(stored.result["r_peaks"]) == 10


def test_af_sample_gets_the_rhythm_opinion_its_band_and_the_stroke_risk_link(af_page):
    page = af_page
    assert not page.exception
    assert any(m.value.startswith("**atrial fibrillation**") for m in page.markdown)
    assert any(c.value.startswith("Colour band: integrated_gradients") for c in page.caption)
    link = page.get("page_link")[0].proto
    assert link.label.endswith("(CHA₂DS₂-VASc)") and (link.page, link.query_string) == ("risk", "score=cha2ds2vasc")


def test_af_sample_switches_to_occlusion_and_splits_the_evidence_by_wave(af_page):
    page = af_page
    assert not page.exception
    assert page.radio(key="ecg_attr_method").value == "Integrated Gradients"
    assert any(m.value.startswith("The model's evidence sits mostly in") for m in page.markdown)
    ig_table = page.dataframe[0].value
    assert list(ig_table["Wave"]) == ["P", "QRS", "T", "other"]
    assert abs(ig_table["Share (%)"].sum() - 100) < 0.5

    page.radio(key="ecg_attr_method").set_value("Occlusion").run()
    assert not page.exception
    occlusion_caption = next(c.value for c in page.caption if c.value.startswith("Colour band:"))
    assert occlusion_caption.startswith("Colour band: occlusion") and "0.25 s window" in occlusion_caption
    key, cached = page.session_state["ecg_occlusion"]
    assert key == page.session_state["ecg_key"] and cached["method"] == "occlusion"
    assert any(m.value.startswith("The model's evidence sits mostly in") for m in page.markdown)
    table = page.dataframe[0].value
    assert list(table["Wave"]) == ["P", "QRS", "T", "other"] and abs(table["Share (%)"].sum() - 100) < 0.5
    assert len(page.get("plotly_chart")) == 3  # the trace still carries the (occlusion) band

    page.run()  # a rerun reuses the cached map
    assert not page.exception and page.session_state["ecg_occlusion"][1] is cached
