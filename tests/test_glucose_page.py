"""The Glucose page through AppTest: a sample to metrics, targets and the AGP; refusals in words; save."""


import pytest

from medui import records


@pytest.fixture
def page(clinician_page):
    return clinician_page("glucose.py")


def test_without_input_the_page_asks_for_one(page):
    page.run()
    assert not page.exception and page.info[0].value.startswith("Upload an export")


def test_sample_gives_metrics_targets_and_figures(page, load_sample):
    at = load_sample(page, "Two people")
    assert not at.exception
    assert at.selectbox(key="glucose_subject").options == ["synthetic-A", "synthetic-B"]
    table = at.dataframe[0].value
    assert "Target (Battelino 2019)" in table.columns and "> 70" in table["Target (Battelino 2019)"].tolist()
    assert len(at.get("plotly_chart")) == 3  # time in ranges, modal day, daily profiles
    assert not at.warning  # 14 days, all readings: no sufficiency banner
    assert "AGP report (PDF)" in [b.proto.label for b in at.get("download_button")]
    at.selectbox(key="glucose_subject").set_value("synthetic-B").run()
    assert not at.exception


def test_contradicting_units_are_refused_in_words(page, load_sample):
    at = load_sample(page, "LibreView")
    assert not at.exception and not at.error
    at.radio(key="glucose_units").set_value("mg/dL").run()
    assert "header says mmol/L" in at.error[0].value.replace("\\", "")


def test_save_under_a_patient(page, load_sample):
    at = load_sample(page, "Dexcom")
    at.text_input(key="glucose_patient").set_value("MRN-77").run()
    next(b for b in at.button if b.label == "Save analysis").click().run()
    assert not at.exception and at.success[0].value.startswith("Saved as analysis")
    stored = records.latest_for_patient("MRN-77", "cgm")
    assert stored and stored.result["source"] == "dexcom" and "mean" in stored.result["subject"]["metrics"]
