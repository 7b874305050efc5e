"""The imaging classifier's serving API: same input pipeline as training, calibrated sigmoid findings, the input
contract, the registry path (production version, cache, promotion, a fresh home registering the base), and the
shipped chest-findings model on phantoms."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch

from medui import config
from medui.imaging import open_image
from medui.imaging.classify import (
    CALIBRATION_FILE,
    Classifier,
    ClassifierInputError,
    check_input,
    clear_cache,
    load_classifier,
)
from medui.imaging.phantom import generate, phantom_dataset
from medui.registry import ModelVersion, get_version, list_versions, promote, register_version
from medui.training import JobSpec, run_job
from medui.training.tasks.image import ImageTask, load_pixels


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _dicom(seed: int = 2, index: int = 0, size: int = 128, mix: dict | None = None) -> tuple[bytes, object]:
    ds, _ = phantom_dataset(seed, index, size, mix)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue(), ds


def _tiny(labels: list[str], multilabel: bool = True, temperature: list[float] | None = None) -> Classifier:
    """A random-weight classifier at 64 px: enough to test everything but what it has learned."""
    torch.manual_seed(0)
    model = ImageTask().fresh({"image_size": 64, "multilabel": multilabel}, labels).eval()
    mv = ModelVersion(name="tiny", version="1", task="image", base_model="scratch", method="full", labels=labels)
    return Classifier(model, labels, mv, temperature)


# ---- serving without a registry ------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [0, 1])  # MONOCHROME2 and MONOCHROME1
def test_prepare_is_the_training_pipeline(index):
    data, ds = _dicom(index=index)
    display = open_image(data, "x.dcm")[2].image
    x = _tiny(["effusion", "nodule"]).prepare(display)
    assert x.shape == (1, 1, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    trained_on = load_pixels(data, "x.dcm", 64)
    np.testing.assert_array_equal(np.rint(x[0, 0].numpy() * 255).astype(np.uint8), trained_on)


def test_probabilities_are_per_finding_tempered_sigmoids():
    clf = _tiny(["effusion", "nodule"], temperature=[2.0, 0.5])
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    expected = torch.sigmoid(logits / torch.tensor([2.0, 0.5]))
    torch.testing.assert_close(clf.probabilities(logits), expected)
    assert clf.calibrated and not _tiny(["a", "b"]).calibrated
    softmax = _tiny(["effusion", "nodule", "normal"], multilabel=False)
    torch.testing.assert_close(softmax.probabilities(logits[:, :2]), torch.softmax(logits[:, :2], -1))


def test_logits_are_differentiable_for_attribution():
    clf = _tiny(["effusion", "nodule"])
    x = clf.prepare(open_image(_dicom()[0], "x.dcm")[2].image).requires_grad_(True)
    clf.logits(x)[0, 1].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_classify_lists_trained_findings_best_first_never_normal():
    data, ds = _dicom()
    display = open_image(data, "x.dcm")[2].image
    single = _tiny(["effusion", "nodule", "normal"], multilabel=False).classify(display, ds)
    assert [f.label for f in single.findings] in (["effusion", "nodule"], ["nodule", "effusion"])
    multi = _tiny(["effusion", "nodule"]).classify(display, ds)
    probs = [f.probability for f in multi.findings]
    assert probs == sorted(probs, reverse=True) and all(0 < p < 1 for p in probs)
    assert multi.input.shape == (1, 1, 64, 64) and multi.warnings == [] and multi.model.name == "tiny"


# ---- the input contract --------------------------------------------------------------------------------------

def test_blank_or_nearly_constant_images_are_refused():
    with pytest.raises(ClassifierInputError, match="blank or nearly constant"):
        check_input(np.full((64, 64), 128, np.uint8))
    noise = (128 + np.random.default_rng(0).integers(-2, 3, (64, 64))).astype(np.uint8)
    with pytest.raises(ClassifierInputError, match="grey levels 126-130"):
        _tiny(["a", "b"]).classify(noise)
    with pytest.raises(ClassifierInputError, match="2-D display image"):
        check_input(np.zeros(10, np.uint8))


def test_other_modalities_views_and_bad_windows_are_warned_about():
    data, ds = _dicom()
    display = open_image(data, "x.dcm")[2].image
    assert check_input(display, ds) == [] and check_input(display) == []
    ds.Modality, ds.ViewPosition, ds.BodyPartExamined = "CT", "LL", "HEAD"
    warnings = check_input(display, ds)
    assert any("modality CT is not a projection radiograph" in w and "unreliable" in w for w in warnings)
    assert any("view position LL is not PA or AP" in w for w in warnings)
    assert any("body part HEAD is not CHEST" in w for w in warnings)
    ds.Modality, ds.ViewPosition, ds.BodyPartExamined = "DX", "AP", "CHEST"
    assert check_input(display, ds) == []
    clipped = np.where(display > 60, 255, 0).astype(np.uint8)
    assert any("pure black or white" in w for w in check_input(clipped))
    assert any("colour image" in w for w in check_input(np.stack([display] * 3, -1)))
    assert any("aspect ratio" in w for w in check_input(display[:, :50]))


# ---- through the registry ------------------------------------------------------------------------------------

def test_no_registered_model_gives_none(shipped_models):
    assert load_classifier() is None and load_classifier("no-such-model") is None


@pytest.mark.slow
def test_tiny_multilabel_model_serves_calibrated_sigmoids_and_ships_to_a_fresh_home(shipped_models, tmp_path,
                                                                                    monkeypatch):
    labels_csv = generate(30, 5, tmp_path / "phantoms", 128)
    result = run_job(JobSpec(task="image", method="lora", data=str(labels_csv), name="chest-findings", image_size=64,
                             max_steps=2, batch_size=8, eval_steps=2, logging_steps=1))
    mv = get_version("chest-findings", result["version"])
    arch = json.loads((mv.directory / "architecture.json").read_text())
    assert arch["arch"]["multilabel"] is True and mv.labels == ["effusion", "nodule"]
    assert set(result["metrics"]["auroc_per_class"]) == {"effusion", "nodule"} and result["metrics"]["multilabel"]
    assert load_classifier() is None  # a candidate is not served
    promote("chest-findings", mv.version, actor="test")

    data, ds = _dicom(seed=9, size=128)
    display = open_image(data, "x.dcm")[2].image
    clf = load_classifier()
    assert clf.multilabel and not clf.calibrated and clf.labels == ["effusion", "nodule"] and clf.image_size == 64
    out = clf.classify(display, ds)
    with torch.no_grad():
        logits = clf.logits(out.input)[0]
    expected = dict(zip(clf.labels, torch.sigmoid(logits).tolist()))
    assert {f.label: pytest.approx(f.probability, abs=1e-6) for f in out.findings} == expected
    assert load_classifier() is clf  # cached per name and version

    # a calibrated version 2, promoted: picked up on the next call
    calibration = tmp_path / CALIBRATION_FILE
    calibration.write_text(json.dumps({"method": "temperature", "temperature": {"effusion": 2.0, "nodule": 0.5}}))
    files = {f.path: mv.directory / f.path for f in mv.files} | {CALIBRATION_FILE: calibration}
    v2 = register_version("chest-findings", "image", files, base_model=mv.base_model, method=mv.method,
                          labels=mv.labels, metrics={}, provenance={}, actor="test")
    promote("chest-findings", v2.version, actor="test")
    clf2 = load_classifier()
    assert clf2 is not clf and clf2.version.version == "2" and clf2.calibrated
    probs = {f.label: f.probability for f in clf2.classify(display, ds).findings}
    assert probs["nodule"] == pytest.approx(torch.sigmoid(logits[1] / 0.5).item(), abs=1e-5)

    # shipped (adapter + head + calibration, no base) and served from a brand-new home
    shipped = shipped_models / "chest-findings" / "1"
    shutil.copytree(v2.directory, shipped)
    manifest = json.loads((shipped / "manifest.json").read_text())
    (shipped / "manifest.json").write_text(json.dumps({**manifest, "version": "1", "stage": "production"}))
    assert not any(f.endswith(".safetensors") and f != "adapter_model.safetensors"
                   for f in (p.name for p in shipped.iterdir()))
    from medui.store import reset_engines

    monkeypatch.setenv("MEDUI_HOME", str(tmp_path / "fresh_home"))
    monkeypatch.delenv("MEDUI_DATABASE_URL", raising=False)  # a brand-new installation: its own database too
    reset_engines()
    clear_cache()
    assert list_versions("efficientnet-lite0-imagenet") == []
    fresh = load_classifier()
    assert fresh.version.shipped and fresh.version.version == "1"
    assert [v.version for v in list_versions("efficientnet-lite0-imagenet")] == ["1"]  # registered on demand
    assert {f.label: f.probability for f in fresh.classify(display, ds).findings} == pytest.approx(probs, abs=1e-5)


@pytest.mark.slow
def test_shipped_chest_findings_model_sees_an_obvious_nodule():
    assert (config.SHIPPED_MODELS_DIR / "chest-findings" / "1" / "manifest.json").is_file()
    clf = load_classifier()
    assert clf is not None and clf.version.name == "chest-findings" and clf.calibrated
    assert clf.labels == ["effusion", "nodule"] and clf.version.provenance["note"].endswith("not for clinical use")
    for index in range(3):  # same seed and index: the same anatomy, texture and noise stream, with or without
        nodule, ds = _dicom(seed=77, index=index, size=384, mix={"nodule": 1})
        normal, _ = _dicom(seed=77, index=index, size=384, mix={"normal": 1})
        with_nodule = clf.classify(open_image(nodule, "x.dcm")[2].image, ds)
        without = clf.classify(open_image(normal, "x.dcm")[2].image, ds)
        p = {f.label: f.probability for f in with_nodule.findings}
        q = {f.label: f.probability for f in without.findings}
        assert p["nodule"] > 0.5 > q["nodule"] and with_nodule.findings[0].label == "nodule", (index, p, q)
