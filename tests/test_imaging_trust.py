"""The trust panel's checks: cascading randomisation on a copy, deletion/insertion curves, the pointing game."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from imaging_fake import random_image, random_lite0
from torch import nn

from medui.imaging import trust
from medui.imaging.attribution import attribute
from medui.imaging.phantom import Finding
from medui.imaging.trust import (
    POINTING_TOLERANCE_PX,
    SIMILARITY_THRESHOLD,
    deletion_insertion,
    pointing_game,
    randomisation_check,
    trust_report,
)
from medui.training.tasks.image import ImageClassifier


@pytest.fixture(scope="module")
def model() -> ImageClassifier:
    return random_lite0()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return random_image()


class Bright(nn.Module):
    """Known answer: finding 0's logit is 10 x mean brightness - 1 (finding 1: the opposite); no weights at all."""

    num_classes = 2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 4)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        m = f.mean((1, 2, 3))[:, None]
        return torch.cat([10 * m - 1, -10 * m], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def square() -> torch.Tensor:
    x = torch.full((1, 1, 64, 64), 0.1)
    x[..., 8:24, 36:52] = 1.0
    return x


def dot() -> torch.Tensor:
    """A small bright dot: blurring it (the curves' "removed" state) flattens it into the background."""
    x = torch.full((1, 1, 64, 64), 0.1)
    x[..., 30:33, 40:43] = 1.0
    return x


def peak_model(x: torch.Tensor) -> torch.Tensor:
    """Known answer for the curves: a finding called from the brightest pixel (10 x max - 7.5: p 0.92 with the dot)."""
    top = x.amax((1, 2, 3))[:, None]
    return torch.cat([10 * top - 7.5, -top], 1)


class Calibrated:
    """The medui Classifier contract the page passes in: model, labels, calibrated probabilities."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.labels = model, ["effusion", "nodule"]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits / 2.0)


def test_cascading_randomisation_changes_gradcam_and_only_touches_a_copy(model, image):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = randomisation_check(model, image, 1, "gradcam")
    assert [s.layers.split(" → ")[-1] for s in result.stages] == ["classifier", "bn2+conv_head", "blocks.6",
                                                                   "blocks.5"]
    assert result.threshold == SIMILARITY_THRESHOLD
    assert result.passed is True and result.stages[-1].spearman < SIMILARITY_THRESHOLD
    assert result.verdict.startswith("Passes")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_a_map_that_ignores_the_model_fails(model, image, monkeypatch):
    """Edge-detector-like behaviour: whatever the weights, the same map comes back, so the check must fail."""
    fixed = attribute(model, image, 1, "gradcam")
    monkeypatch.setattr(trust, "attribute", lambda *args, **kwargs: fixed)
    result = randomisation_check(model, image, 1, "gradcam", amap=fixed, stages=2)
    assert result.passed is False and result.verdict.startswith("Fails")
    assert [s.spearman for s in result.stages] == pytest.approx([1.0, 1.0])
    assert [s.ssim for s in result.stages] == pytest.approx([1.0, 1.0])


def test_randomisation_not_applicable_without_evidence_or_weights():
    assert randomisation_check(Bright(), square(), 1, "gradcam").passed is None  # empty map
    result = randomisation_check(Bright(), square(), 0, "gradcam")
    assert result.passed is None and "no weights" in result.verdict
    with pytest.raises(ValueError, match="needs a model with layers"):
        randomisation_check(lambda x: Bright()(x), square(), 0, "ig")


def test_similarity_measures():
    a = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    assert trust.spearman(a, a) == pytest.approx(1.0) and trust.spearman(a, 1 - a) == pytest.approx(-1.0)
    assert trust.spearman(a, np.zeros_like(a)) == 0.0  # a map that vanished
    assert trust.ssim(a, a) == pytest.approx(1.0) and trust.ssim(a, 1 - a) < 0.2


def test_deletion_and_insertion_beat_random_order_for_a_faithful_map():
    x = dot()
    amap = attribute(Bright(), x, 0, "gradcam")  # points at the dot
    curves = deletion_insertion(peak_model, x, 0, amap)
    assert len(curves.fractions) == len(curves.deletion) == len(curves.insertion) == trust.CURVE_STEPS + 1
    assert curves.fractions[0] == 0 and curves.fractions[-1] == 1
    assert curves.deletion[0] == pytest.approx(float(torch.sigmoid(peak_model(x)[0, 0])))  # nothing removed yet
    assert curves.deletion[0] == pytest.approx(curves.insertion[-1])  # everything put back
    assert curves.deletion[1] < 0.5 < curves.insertion[1]  # the dot goes (comes back) in the first step
    assert curves.deletion_auc < curves.random_deletion_auc and curves.insertion_auc > curves.random_insertion_auc
    assert curves.passed is True and curves.verdict.startswith("Passes")


def test_a_map_pointing_at_the_background_fails_deletion_insertion():
    x = dot()
    amap = attribute(Bright(), x, 0, "gradcam")
    backwards = replace(amap, map=(1 - amap.map).astype(np.float32))
    curves = deletion_insertion(peak_model, x, 0, backwards)
    assert curves.passed is False and curves.deletion_auc > curves.random_deletion_auc


def test_a_saturated_model_makes_the_curves_not_informative():
    x = square()
    amap = attribute(Bright(), x, 0, "gradcam")
    curves = deletion_insertion(lambda z: Bright()(z) + 100, x, 0, amap)  # p = 1 whatever is removed
    assert curves.passed is None and curves.verdict.startswith("Not informative")


def test_curves_refuse_a_map_of_another_size(model, image):
    amap = attribute(Bright(), square(), 0, "gradcam")
    with pytest.raises(ValueError, match=r"the map is \(64, 64\) but the input is \(128, 128\)"):
        deletion_insertion(model, image, 0, amap)


def test_pointing_game_geometry_and_tolerance():
    amap = replace(attribute(Bright(), square(), 0, "gradcam"), target_label="nodule")
    assert POINTING_TOLERANCE_PX == 15
    inside = pointing_game(replace(amap, peak=(50, 60)), [Finding("nodule", 40, 40, 80, 80)])
    assert inside.hit is True and inside.distance_px == 0 and "inside the box" in inside.verdict
    near = pointing_game(replace(amap, peak=(50, 91)), [(40, 40, 80, 80)])  # 12 px right of the last column (79)
    assert near.hit is True and near.distance_px == 12
    far = pointing_game(replace(amap, peak=(100, 100)), [(40, 40, 80, 80)])  # 21 px off diagonally, in 2 axes
    assert far.hit is False and far.distance_px == pytest.approx(np.hypot(21, 21))
    assert pointing_game(replace(amap, peak=(100, 100)), [(40, 40, 80, 80)], tolerance=40).hit is True
    other = pointing_game(replace(amap, peak=(50, 60)), [Finding("effusion", 40, 40, 80, 80)])
    assert other.hit is None and other.verdict.startswith("Not applicable")
    empty = pointing_game(replace(amap, peak=None), [(40, 40, 80, 80)])
    assert empty.hit is False and "no evidence" in empty.verdict
    # two boxes of the finding: a hit on either counts
    assert pointing_game(replace(amap, peak=(5, 5)), [(40, 40, 80, 80), (0, 0, 10, 10)]).hit is True


def test_trust_report_for_a_classifier_end_to_end(model, image):
    classifier = Calibrated(model)
    box = Finding("nodule", 10, 20, 40, 60)
    report = trust_report(classifier, image, 1, "gradcam", boxes=[box], original_shape=(512, 512))
    with torch.no_grad():
        logit = float(model(image).logits[0, 1])
    assert report.target_label == "nodule" and report.method == "gradcam"
    assert report.probability == pytest.approx(float(torch.sigmoid(torch.tensor(logit / 2.0))), rel=1e-5)
    assert [name for name, _, _ in report.checks()] == ["Model randomisation", "Deletion / insertion",
                                                         "Pointing game"]
    assert all(isinstance(verdict, str) and verdict for _, _, verdict in report.checks())
    assert report.pointing.hit is not None  # the box is this finding's, so the game is played
    assert json.loads(json.dumps(report.to_dict()))["randomisation"]["threshold"] == SIMILARITY_THRESHOLD
