"""The Imaging page's findings, overlay, trust panel and save, through AppTest: first with a small stand-in model
at the registry boundary (tests/imaging_fake.py), then with the shipped chest-findings model."""

from __future__ import annotations

from pathlib import Path

import pytest
from imaging_fake import fake_classifier

from medui import audit, records
from medui.imaging.analysis import NO_MODEL

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "chest-findings" / "1"


@pytest.fixture
def fake(monkeypatch):
    classifier = fake_classifier()
    monkeypatch.setattr("medui.imaging.classify.load_classifier", lambda *a, **k: classifier)
    return classifier


@pytest.fixture
def phantom(clinician_page, load_sample):
    """The phantom study sample on the page, first image (phantom_0000: three nodules) selected."""
    return load_sample(clinician_page("imaging.py", timeout=120), "Phantom")


def texts(elements) -> list[str]:
    return [e.value.replace("\\", "") for e in elements]


def test_findings_chart_statement_and_overlay(fake, phantom):
    at = phantom
    assert not at.exception and not at.error
    assert not at.warning  # the study's labels.csv feeds the pointing game; it is not reported as a bad file
    assert any("synthetic phantom radiographs only" in c and "not for clinical use" in c for c in texts(at.caption))
    assert len(at.get("plotly_chart")) == 1  # the findings bar chart
    assert sorted(at.selectbox(key="imaging_cam_label").options) == ["effusion", "nodule"]
    captions = [c for i in at.image for c in i.captions]
    assert "Displayed image" in captions and any(c.startswith("Grad-CAM: ") for c in captions)
    peak = next(c for c in texts(at.caption) if "Peak evidence" in c)
    assert "logit units" in peak and "own peak" in peak
    assert "Download overlay (PNG)" in [d.label for d in at.get("download_button")]


def test_overlay_controls(fake, phantom):
    at = phantom
    at.selectbox(key="imaging_cam_label").set_value("nodule").run()
    at.slider(key="imaging_cam_opacity").set_value(0.8).run()
    at.checkbox(key="imaging_cam_side").uncheck().run()
    assert not at.exception and [c for i in at.image for c in i.captions][-1] == "Grad-CAM: nodule"
    assert "Displayed image" not in [c for i in at.image for c in i.captions]
    at.checkbox(key="imaging_cam_fixed").check().run()
    at.number_input(key="imaging_cam_scale_gradcam").set_value(2.0).run()
    assert any("Full colour at 2 logit units" in c for c in texts(at.caption))
    at.selectbox(key="imaging_cam_method").set_value("ig").run()
    assert any("press the button" in i for i in texts(at.info))  # heavy maps wait for the button
    at.button(key="imaging_cam_go").click().run()
    assert not at.exception and [c for i in at.image for c in i.captions][-1] == "Integrated Gradients: nodule"
    assert any("Baseline: black image" in c for c in texts(at.caption))


def test_trust_panel_with_the_phantoms_boxes_and_save(fake, phantom):
    at = phantom
    at.selectbox(key="imaging_cam_label").set_value("nodule").run()
    assert not at.get("plotly_chart")[1:]  # the trust checks wait for the button
    at.button(key="imaging_trust_go").click().run()
    assert not at.exception
    verdicts = "\n".join(texts(at.markdown))
    assert "**Model randomisation**" in verdicts and "deletion AUC" in verdicts
    assert "**Pointing game**: Hit" in verdicts or "**Pointing game**: Miss" in verdicts  # phantom_0000 has nodules
    at.text_input(key="imaging_patient").set_value("MRN-42").run()
    at.button(key="imaging_save").click().run()
    assert not at.exception and texts(at.success) == ["Saved as analysis 1 for MRN-42."]
    saved = records.latest_for_patient("MRN-42", "imaging")
    assert saved.model == "chest-findings v1" and saved.result["source"].endswith("phantom_0000.dcm")
    assert saved.result["cam"]["label"] == "nodule" and saved.result["trust"]["pointing"]["hit"] in (True, False)
    assert {f["label"] for f in saved.result["findings"]} == {"effusion", "nodule"}
    assert audit.events(actor="dr.grey", action="analysis")[0]["detail"]["kind"] == "imaging"


def test_without_a_model_the_viewer_still_works(monkeypatch, clinician_page, load_sample):
    monkeypatch.setattr("medui.imaging.classify.load_classifier", lambda *a, **k: None)
    at = load_sample(clinician_page("imaging.py"), "Phantom")
    assert not at.exception and NO_MODEL in texts(at.warning) and not at.get("plotly_chart")
    assert len(at.image) == 1 and "Download this view (PNG, no header)" in [d.label for d in at.get("download_button")]


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED.is_dir(), reason="models/chest-findings/1 is not shipped yet")
def test_shipped_model_finds_the_phantoms_nodules(phantom):
    at = phantom
    assert not at.exception and not at.error and not at.warning
    assert at.selectbox(key="imaging_cam_label").value == "nodule"  # phantom_0000 holds three nodules, no effusion
    assert any("nodule: probability 100%" in c for c in texts(at.caption))
    # Integrated Gradients: the shipped model's Grad-CAM peaks miss the phantoms' boxes (see the README's figures)
    at.selectbox(key="imaging_cam_method").set_value("ig").run()
    at.button(key="imaging_cam_go").click().run()
    at.button(key="imaging_trust_go").click().run()
    verdicts = "\n".join(texts(at.markdown))
    assert not at.exception and "**Pointing game**: Hit" in verdicts and "**Model randomisation**: Passes" in verdicts
