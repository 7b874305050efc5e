"""The Risk page through AppTest: sample patient, scores side by side, refusals in words, save and reload."""


import pytest
from streamlit.testing.v1 import AppTest

from medui import records
from medui.risk import CALCULATORS


@pytest.fixture
def page(clinician_page):
    return clinician_page("risk.py")


def load_sample(at: AppTest) -> AppTest:
    at.run()
    next(b for b in at.button if b.label.startswith("Load sample")).click().run()
    return at.run()


def test_empty_form_explains_what_each_score_needs(page):
    page.run()
    assert not page.exception
    assert any(i.value.startswith("Not applicable: missing input for pce: age") for i in page.info)


def test_sample_patient_gets_every_score_and_an_explained_model(page):
    at = load_sample(page)
    assert not at.exception
    assert not [i.value for i in at.info if i.value.startswith("Not applicable")]
    assert len(at.get("plotly_chart")) == 8  # six gauges, the attribution chart and the calibration plot
    assert any(c.value.startswith("AUROC 0.709") for c in at.caption)
    probability = at.metric[0].value
    assert probability.endswith("%") and 0 < float(probability[:-1]) < 100
    assert any("percentage points" in m.value for m in at.markdown)


def test_out_of_range_input_is_a_message_for_that_score_only(page):
    at = load_sample(page)
    at.number_input(key="risk_in_age").set_value(35).run()
    assert "Not applicable: age 35 years is outside the validated range 40–79 years for pce" in [
        i.value for i in at.info]
    assert not at.exception


def test_focus_from_the_ecg_page_puts_the_stroke_score_first(page):
    page.query_params["score"] = "cha2ds2vasc"
    at = load_sample(page)
    titles = {f"**{c.title}**" for c in CALCULATORS.values()}
    card_titles = [m.value for m in at.markdown if m.value in titles]
    assert card_titles[0] == f"**{CALCULATORS['cha2ds2vasc'].title}**" and len(card_titles) == len(CALCULATORS)


def test_saved_assessment_is_stored_and_offered_again(page, clinician_page):
    at = load_sample(page)
    at.text_input(key="risk_patient").input("bed-7").run()
    next(b for b in at.button if b.label == "Save assessment").click().run()
    stored = records.latest_for_patient("bed-7", "risk")
    assert stored.result["inputs"]["age"] == 62 and "pce" in stored.result["scores"]
    fresh = clinician_page("risk.py").run()  # a new browser session of the same clinician
    fresh.text_input(key="risk_patient").input("bed-7").run()
    next(b for b in fresh.button if b.label.startswith("Fill in the values stored for bed-7")).click().run()
    assert fresh.number_input(key="risk_in_age").value == 62
