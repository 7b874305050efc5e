"""Per-finding CAM layers: chosen by the pointing game on validation phantoms, shipped in attribution.json (digest
checked), read back by the classifier and used by every CAM the page, the CLI and the trust panel compute."""

from __future__ import annotations

import json

import pytest
from imaging_fake import random_lite0

from medui.imaging import decode, render
from medui.imaging.analysis import cam_layer, classify_image, explain
from medui.imaging.cam_layers import ATTRIBUTION_FILE, CANDIDATE_LAYERS, read_layers, select_layers
from medui.imaging.classify import Classifier, clear_cache, load_classifier
from medui.imaging.phantom import phantom_dataset
from medui.registry import ModelVersion, RegistryError, promote, register_version

LABELS = ["effusion", "nodule"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _lite0_classifier(cam_layers: dict[str, str] | None = None) -> Classifier:
    mv = ModelVersion(name="chest-findings", version="1", task="image", base_model="scratch", method="full",
                      labels=LABELS)
    return Classifier(random_lite0(64).requires_grad_(False), LABELS, mv, None, cam_layers)


def test_a_findings_own_layer_wins_over_the_backbone_default():
    clf = _lite0_classifier({"effusion": "blocks.5"})
    assert cam_layer(clf, "gradcam", "effusion") == cam_layer(clf, "gradcampp", "effusion") == "blocks.5"
    assert cam_layer(clf, "gradcam", "nodule") == cam_layer(clf, "gradcam") == "blocks.4"  # Lite0's default
    assert cam_layer(clf, "ig", "effusion") is None and cam_layer(clf, "occlusion", "effusion") is None
    ds, _ = phantom_dataset(3, 0, 128, {"both": 1})
    display = render(ds, decode(ds, 0), "header").image
    found = classify_image(clf, display, ds)
    assert "blocks.5" in explain(clf, found, "effusion", "gradcam", display.shape).layer
    assert "blocks.4" in explain(clf, found, "nodule", "gradcam", display.shape).layer


@pytest.mark.slow
def test_selection_takes_each_findings_best_candidate_and_keeps_the_evidence():
    chosen = select_layers(_lite0_classifier(), n=3, seed=4)
    rates = chosen["selection"]["pointing_rate"]
    assert set(chosen["cam_layers"]) == set(rates) and set(rates) <= set(LABELS) and rates
    for label, layer in chosen["cam_layers"].items():
        assert set(rates[label]) == set(CANDIDATE_LAYERS) and all(0 <= r <= 1 for r in rates[label].values())
        best = max(rates[label].values())
        assert rates[label][layer] == best
        assert CANDIDATE_LAYERS.index(layer) == min(CANDIDATE_LAYERS.index(k) for k, r in rates[label].items()
                                                    if r == best)  # ties go to the finer layer
    assert chosen["selection"]["phantoms"] == {"generator": "medui.imaging.phantom.phantom_dataset", "seed": 4,
                                               "images": 3, "size_px": 512}


def _version_with(tmp_path, shipped: ModelVersion, attribution: object) -> ModelVersion:
    """A registered, promoted copy of the `shipped` chest model whose attribution.json holds `attribution`."""
    path = tmp_path / ATTRIBUTION_FILE
    path.write_text(json.dumps(attribution))
    files = {f.path: shipped.directory / f.path for f in shipped.files if f.path != ATTRIBUTION_FILE}
    mv = register_version("chest-findings", "image", files | {ATTRIBUTION_FILE: path}, base_model=shipped.base_model,
                          method=shipped.method, labels=shipped.labels, metrics={}, provenance={}, actor="test")
    promote("chest-findings", mv.version, actor="test")
    clear_cache()
    return mv


@pytest.mark.slow
def test_the_shipped_model_names_a_layer_per_finding_and_bad_files_are_refused(tmp_path):
    clf = load_classifier()
    shipped = json.loads((clf.version.directory / ATTRIBUTION_FILE).read_text())
    assert clf.cam_layers == shipped["cam_layers"] and set(clf.cam_layers) == set(LABELS)
    assert all(layer in CANDIDATE_LAYERS for layer in clf.cam_layers.values())
    assert shipped["selection"]["phantoms"]["seed"] not in (0, 777, 1000)  # not training, bench nor fresh test

    mv = _version_with(tmp_path, clf.version, {"cam_layers": {"nodule": "blocks.6"}})
    assert read_layers(mv, LABELS) == {"nodule": "blocks.6"} and load_classifier().cam_layers == {"nodule": "blocks.6"}
    for bad in ({"cam_layers": {"pneumothorax": "blocks.4"}}, {"cam_layers": {"nodule": "head; rm -rf"}}, []):
        mv = _version_with(tmp_path, clf.version, bad)
        with pytest.raises(RegistryError, match="cam_layers must map"):
            read_layers(mv, LABELS)
