"""Attribution maps: agreement with pytorch-grad-cam, known answers, units, overlays, and a shared model left intact."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from imaging_fake import random_image, random_lite0
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from medui.imaging.attribution import METHODS, attribute, overlay
from medui.training.tasks.image import ImageClassifier

PEERS = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "hirescam": HiResCAM}


@pytest.fixture(scope="module")
def model() -> ImageClassifier:
    return random_lite0()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return random_image()


class Logits(nn.Module):
    """pytorch-grad-cam wants a module returning a logits tensor, not a SequenceClassifierOutput."""

    def __init__(self, model: ImageClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


class Bright(nn.Module):
    """A model with a known answer: finding 0's logit is 10 x the mean brightness - 1, finding 1's is its opposite.

    Its "feature map" is the image average-pooled by 4, and its head a global average and a linear layer, so every
    method must point at the brightest region for finding 0 and show no evidence at all for finding 1.
    """

    num_classes = 2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 4)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        m = f.mean((1, 2, 3))[:, None]
        return torch.cat([10 * m - 1, -10 * m], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def square(size: int = 64, rows: slice = slice(8, 24), cols: slice = slice(36, 52)) -> torch.Tensor:
    x = torch.full((1, 1, size, size), 0.1)
    x[..., rows, cols] = 1.0
    return x


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "hirescam"])
def test_cams_agree_with_pytorch_grad_cam(model, image, method):
    peer_model = copy.deepcopy(model)  # the peer hooks the model it is given; keep the fixture clean
    with PEERS[method](model=Logits(peer_model), target_layers=[peer_model.backbone.bn2]) as cam:
        theirs = cam(input_tensor=image, targets=[ClassifierOutputTarget(1)])[0]
    ours = attribute(model, image, 1, method)
    assert ours.map.shape == theirs.shape == (128, 128)
    assert ours.raw_max > 0
    assert corr(ours.map, theirs) > 0.99


def test_a_finer_efficientnet_layer_agrees_with_pytorch_grad_cam(model, image):
    peer_model = copy.deepcopy(model)
    with GradCAM(model=Logits(peer_model), target_layers=[peer_model.backbone.blocks[4]]) as cam:
        theirs = cam(input_tensor=image, targets=[ClassifierOutputTarget(0)])[0]
    ours = attribute(model, image, 0, "gradcam", layer="blocks.4")
    assert ours.layer == "blocks.4 output, 112x8x8"  # stride 16: twice the last stage's resolution
    assert corr(ours.map, theirs) > 0.99


def test_vit_splits_before_the_last_block_and_agrees_with_pytorch_grad_cam():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2, img_size=64)
    model = ImageClassifier(vit, {"mean": [0.5] * 3, "std": [0.5] * 3}).eval()
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    ours = attribute(model, x, 0, "gradcam")
    assert ours.layer.startswith("blocks.10 output") and ours.map.shape == (64, 64)

    def tokens_to_map(t: torch.Tensor) -> torch.Tensor:  # the peer's documented ViT reshape: drop the class token
        return t[:, 1:].reshape(t.shape[0], 4, 4, t.shape[-1]).permute(0, 3, 1, 2)

    peer = copy.deepcopy(model)
    with GradCAM(model=Logits(peer), target_layers=[peer.backbone.blocks[-2]], reshape_transform=tokens_to_map) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(0)])[0]
    assert corr(ours.map, theirs) > 0.99


def test_swin_nhwc_features_are_reshaped():
    torch.manual_seed(0)
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=2, img_size=64,
                             window_size=2, depths=(1, 1, 1, 1), embed_dim=24, num_heads=(1, 1, 1, 1))
    swin.eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    ours = attribute(swin, x, 1, "hirescam")
    peer = copy.deepcopy(swin)
    with HiResCAM(model=peer, target_layers=[peer.norm], reshape_transform=lambda t: t.permute(0, 3, 1, 2)) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(1)])[0]
    assert ours.map.shape == (64, 64) and corr(ours.map, theirs) > 0.99


@pytest.mark.parametrize("method", ["gradcam", "ig"])
def test_a_served_classifier_with_frozen_weights_gives_the_same_maps(model, image, method):
    """load_classifier switches requires_grad off on the shared model; maps must not depend on it."""
    from medui.imaging.classify import Classifier

    frozen = copy.deepcopy(model)
    for param in frozen.parameters():
        param.requires_grad_(False)
    served = attribute(Classifier(frozen, ["effusion", "nodule"], None), image, 1, method)
    assert served.target_label == "nodule"
    np.testing.assert_allclose(served.map, attribute(model, image, 1, method).map, atol=1e-5)


def test_works_when_the_caller_serves_under_inference_mode(model, image):
    with torch.inference_mode():
        served = attribute(model, image.clone(), 1, "gradcam")
    np.testing.assert_allclose(served.map, attribute(model, image, 1, "gradcam").map, atol=1e-6)


def test_score_is_the_models_logit(model, image):
    """The CAM path feeds the backbone through ImageClassifier.normalise; it must give the model's own logits."""
    with torch.no_grad():
        logits = model(image).logits[0]
    for target in (0, 1):
        assert attribute(model, image, target, "gradcam").score == pytest.approx(float(logits[target]), rel=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_points_at_the_known_region_in_original_pixels(method):
    amap = attribute(Bright(), square(), 0, method, original_shape=(640, 320))  # rows x10, columns x5
    row, col = amap.peak
    assert 8 * 10 <= row < 24 * 10 and 36 * 5 <= col < 52 * 5
    assert amap.map.max() == pytest.approx(1.0) and amap.map.min() >= 0
    assert (amap.baseline is None) == (method not in ("ig", "occlusion"))


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "ig"])
def test_maps_are_in_logit_units(method):
    """Mean of the map x raw_max = the finding's logit contribution (head bias, or the black baseline, excluded)."""
    x = square()
    amap = attribute(Bright(), x, 0, method)
    contribution = 10 * float(x.mean())  # logit(x) - (-1) for CAM; logit(x) - logit(black) for IG
    assert float(amap.map.mean()) * amap.raw_max == pytest.approx(contribution, rel=0.02)


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "hirescam", "ig"])
def test_a_finding_without_evidence_shows_no_hot_spot(method):
    x = square()
    amap = attribute(Bright(), x, 1, method)  # brightness only lowers finding 1's logit
    assert amap.raw_max == 0 and amap.peak is None and not amap.map.any()
    display = (x[0, 0].numpy() * 255).astype(np.uint8)
    assert (overlay(display, amap) == display[..., None]).all()  # nothing drawn over the image


def test_overlay_size_scale_and_opacity():
    x = square()
    amap = attribute(Bright(), x, 0, "gradcam")
    display = np.full((300, 280), 100, np.uint8)
    out = overlay(display, amap, opacity=0.6)
    assert out.shape == (300, 280, 3) and out.dtype == np.uint8
    change = np.abs(out.astype(int) - 100).sum(-1)
    assert change[45:105, 165:220].mean() > 3 * change[200:, :100].mean()  # drawn over the bright square
    fainter = overlay(display, amap, opacity=0.6, scale=4 * amap.raw_max)  # a fixed scale well above this map's
    assert np.abs(fainter.astype(int) - 100).sum() < 0.5 * change.sum()
    assert (overlay(display, amap, opacity=0.0) == 100).all()
    rgb = np.zeros((50, 60, 3), np.uint8)
    assert overlay(rgb, amap, colormap="viridis").shape == (50, 60, 3)


def test_bad_requests_get_specific_messages(model, image):
    with pytest.raises(ValueError, match="unknown attribution method 'guided'"):
        attribute(model, image, 0, "guided")
    with pytest.raises(ValueError, match=r"one image as a \[1, C, H, W\]"):
        attribute(model, image[0], 0, "gradcam")
    with pytest.raises(ValueError, match="target 2 is not one of the model's 2 outputs"):
        attribute(model, image, 2, "gradcam")
    with pytest.raises(ValueError, match=r"CAM layer 'blocks.7' is not available .* blocks.0 to blocks.6"):
        attribute(model, image, 0, "gradcam", layer="blocks.7")
    with pytest.raises(ValueError, match="needs a timm model"):
        attribute(lambda x: x.mean((1, 2, 3))[:, None], image, 0, "gradcam")
    amap = attribute(model, image, 0, "gradcam")
    with pytest.raises(ValueError, match="opacity must be between 0 and 1"):
        overlay(np.zeros((8, 8), np.uint8), amap, opacity=2)
    with pytest.raises(ValueError, match="unknown colormap 'nope'"):
        overlay(np.zeros((8, 8), np.uint8), amap, colormap="nope")
    with pytest.raises(ValueError, match="grey HxW or RGB HxWx3"):
        overlay(np.zeros((8, 8, 2), np.uint8), amap)


def test_a_plain_function_works_for_ig_and_occlusion():
    amap = attribute(lambda x: Bright()(x), square(), 0, "occlusion", original_shape=(64, 64))
    assert 8 <= amap.peak[0] < 24 and 36 <= amap.peak[1] < 52


def _model_state(model: nn.Module) -> tuple:
    hooks = sum(len(getattr(m, name)) for m in model.modules() for name in
                ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))
    return ({k: v.clone() for k, v in model.state_dict().items()}, hooks, model.training,
            [p.requires_grad for p in model.parameters()], [p.grad for p in model.parameters()])


@pytest.mark.slow
def test_two_threads_on_one_shared_model_match_sequential_runs(model, image):
    jobs = {"a": [("gradcam", 0), ("gradcampp", 1), ("hirescam", 0)], "b": [("ig", 1), ("gradcam", 1)]}
    sequential = {k: [attribute(model, image, t, m).map for m, t in job] for k, job in jobs.items()}
    before = _model_state(model)
    results: dict[str, list[np.ndarray]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(key: str) -> None:
        try:
            start.wait()
            results[key] = [attribute(model, image, t, m).map for m, t in jobs[key]]
            overlay((image[0, 0].numpy() * 255).astype(np.uint8), attribute(model, image, 0, "gradcam"))
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise be lost
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key, maps in sequential.items():
        for seq, par in zip(maps, results[key]):
            np.testing.assert_allclose(par, seq, atol=1e-4)
    after = _model_state(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert after[1] == before[1] == 0 and after[2] is before[2] is False
    assert after[3] == before[3] and all(g is None for g in after[4])
