"""Where the classifier looked: Grad-CAM, Grad-CAM++, HiResCAM, Integrated Gradients and Occlusion, and overlays.

    amap = attribute(classifier, x, target=0, method="gradcam", original_shape=(rows, cols))
    rgb = overlay(display_uint8, amap, opacity=0.5)       # RGB uint8 at the display's size

`x` is the model input [1, C, S, S] (for an `ImageClassifier`: grey in [0, 1]). Maps are the evidence FOR the target
finding (positive part only), in target-logit units: each value is scaled so that the image mean of the signed map
is the finding's logit contribution — exactly so for Grad-CAM and HiResCAM when the head is a global average pool
and a linear layer (timm convnets), and for Integrated Gradients by completeness (logit(x) - logit(baseline)); for
Occlusion each value is the mean logit drop when a patch over that pixel is hidden. Grad-CAM++ uses the same cell
scaling but its weights are not a logit decomposition. `raw_max` keeps that magnitude, so a confident negative
reads as a small number and a faint overlay rather than a hot spot rescaled to full colour.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("gradcam", "gradcampp", "hirescam", "ig", "occlusion")
CAM_METHODS = ("gradcam", "gradcampp", "hirescam")
METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "hirescam": "HiResCAM",
                "ig": "Integrated Gradients", "occlusion": "Occlusion"}
IG_STEPS = 32  # Gauss-Legendre points: completeness error is well under 1% of the logit difference here
# Images per pass for IG (captum's internal_batch_size) and Occlusion: on CPU, batches of 8 at 224 px ran fastest
# per image (16 and 32 spill the caches), and they bound memory.
IG_BATCH = 8
OCCLUSION_BATCH = 8


@dataclass(frozen=True)
class AttributionMap:
    """One finding's map at model-input resolution, normalised to [0, 1] by `raw_max` (all zero when no evidence)."""

    map: np.ndarray  # float32 [S, S]
    raw_max: float  # the map's maximum in target-logit units (see module docstring), before normalising
    method: str
    target: int
    target_label: str
    score: float  # the target's logit for this input
    peak: tuple[int, int] | None  # (row, col) of the maximum in original-image pixels; None when the map is empty
    baseline: str | None = None  # what "absent" means for IG and Occlusion
    layer: str | None = None  # where a CAM was taken


@dataclass(frozen=True)
class ModelParts:
    """What attribution needs from a model: its logits, the timm network to split for a CAM, and where it runs."""

    forward: Callable[[torch.Tensor], torch.Tensor]  # model input -> logits [B, L]
    net: nn.Module | None  # the timm network a CAM is split on; None for a plain function
    prep: Callable[[torch.Tensor], torch.Tensor]  # model input -> the network's input
    labels: list[str] | None
    device: torch.device


def resolve(source: Any) -> ModelParts:
    """A medui Classifier, an ImageClassifier, a timm model, or (IG/Occlusion only) any x -> logits callable."""
    labels = None
    if isinstance(getattr(source, "model", None), nn.Module) and hasattr(source, "labels"):
        labels, source = list(source.labels), source.model
    param = next(source.parameters(), None) if isinstance(source, nn.Module) else None
    device = param.device if param is not None else torch.device("cpu")
    if isinstance(source, nn.Module) and hasattr(source, "backbone") and hasattr(source, "normalise"):
        model = source
        return ModelParts(lambda x: model(x).logits, model.backbone, model.normalise, labels, device)
    if isinstance(source, nn.Module) and hasattr(source, "forward_features") and hasattr(source, "forward_head"):
        return ModelParts(source, source, lambda x: x, labels, device)
    if callable(source):
        return ModelParts(source, None, lambda x: x, labels, device)
    raise ValueError(f"cannot attribute with a {type(source).__name__}: give a classifier, a timm model or a callable")


def _is_vit(net: nn.Module) -> bool:
    return all(hasattr(net, a) for a in ("patch_embed", "_pos_embed", "blocks", "num_prefix_tokens"))


def _is_efficientnet(net: nn.Module) -> bool:
    return all(hasattr(net, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2"))


def _split(net: nn.Module, z: torch.Tensor, layer: str | None
           ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], str]:
    """(features computed without grad, the rest of the network from them to logits, where the split is).

    Default (layer None): convnets split at forward_features / forward_head, the last stage's output. A ViT's final
    norm makes its patch tokens irrelevant to a class-token head, so it splits before the last block instead (the
    usual ViT CAM layer); Swin's forward_features is an NHWC map that the average-pool head sees whole. `layer`
    "blocks.K" takes the output of block K instead (ViT, and EfficientNet-family convnets), for a finer map.
    """
    vit, effnet = _is_vit(net), _is_efficientnet(net)
    if layer is None:
        if not vit:
            with torch.no_grad():
                return net.forward_features(z), net.forward_head, "forward_features output (last stage)"
        layer = f"blocks.{len(net.blocks) - 2}"
    match = re.fullmatch(r"blocks\.(\d+)", layer)
    if not (vit or effnet) or not match or int(match[1]) >= len(net.blocks):
        raise ValueError(f"CAM layer {layer!r} is not available for {type(net).__name__}; leave it unset for the last "
                         f"stage{f', or use blocks.0 to blocks.{len(net.blocks) - 1}' if vit or effnet else ''}")
    k = int(match[1]) + 1
    with torch.no_grad():
        t = net.norm_pre(net.patch_drop(net._pos_embed(net.patch_embed(z)))) if vit else net.bn1(net.conv_stem(z))
        t = net.blocks[:k](t)
    if vit:
        return t, lambda f: net.forward_head(net.norm(net.blocks[k:](f))), f"blocks.{k - 1} output"
    return t, lambda f: net.forward_head(net.bn2(net.conv_head(net.blocks[k:](f)))), f"blocks.{k - 1} output"


def _as_nchw(f: torch.Tensor, net: nn.Module, z: torch.Tensor) -> torch.Tensor:
    if f.ndim == 3:  # ViT tokens [B, prefix + h*w, D]
        patch = net.patch_embed.patch_size
        h, w = z.shape[-2] // patch[0], z.shape[-1] // patch[1]
        return f[:, net.num_prefix_tokens:].reshape(f.shape[0], h, w, f.shape[-1]).permute(0, 3, 1, 2)
    if getattr(net, "output_fmt", "NCHW") == "NHWC":  # Swin
        return f.permute(0, 3, 1, 2)
    return f


def _cam(m: ModelParts, x: torch.Tensor, target: int, method: str, layer: str | None
         ) -> tuple[torch.Tensor, float, str]:
    # Hand-written rather than pytorch-grad-cam: that package registers forward/backward hooks on the model and
    # backpropagates into its parameters' .grad, which would leak into every other session sharing the cached model.
    # Here the forward is split into features -> head; the features are a tensor this call owns, and their gradient
    # comes from torch.autograd.grad on it, so the shared model gets no hooks, no .grad, no requires_grad flips.
    z = m.prep(x)
    feats, head, layer = _split(m.net, z, layer)
    feats = feats.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = head(feats)
        (grad,) = torch.autograd.grad(logits[0, target], feats)
    a, g = _as_nchw(feats.detach(), m.net, z), _as_nchw(grad, m.net, z)
    if method == "gradcam":
        cam = (g.mean((2, 3), keepdim=True) * a).sum(1)
    elif method == "hirescam":
        cam = (g * a).sum(1)
    else:  # Grad-CAM++ (Chattopadhay et al. 2018), the closed form with the exponential-output assumption
        g2 = g * g
        alpha = g2 / (2 * g2 + a.sum((2, 3), keepdim=True) * g2 * g + 1e-6)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        cam = ((F.relu(g) * alpha).sum((2, 3), keepdim=True) * a).sum(1)
    cells = cam.shape[-2] * cam.shape[-1]  # per-cell -> logit units: the map's mean is the logit contribution
    layer = f"{layer}, {a.shape[1]}x{a.shape[2]}x{a.shape[3]}"
    return cam[0] * cells, float(logits.detach()[0, target]), layer


def _ig(m: ModelParts, x: torch.Tensor, target: int) -> tuple[torch.Tensor, float, str]:
    from captum.attr import IntegratedGradients

    base = torch.zeros_like(x)
    attr = IntegratedGradients(m.forward).attribute(x, baselines=base, target=target, n_steps=IG_STEPS,
                                                    internal_batch_size=IG_BATCH)
    with torch.no_grad():
        score = float(m.forward(x)[0, target])
    pixels = x.shape[-2] * x.shape[-1]  # density -> logit units: completeness makes the mean logit(x) - logit(black)
    return attr[0].sum(0) * pixels, score, f"black image (all zeros), {IG_STEPS} Gauss-Legendre steps"


def _occlusion(m: ModelParts, x: torch.Tensor, target: int) -> tuple[torch.Tensor, float, str]:
    from captum.attr import Occlusion

    size = x.shape[-1]
    win = max(2, size // 8)
    stride = max(1, win // 2)
    fill = float(x.mean())  # mean grey: a flat patch, less out of distribution for a radiograph than black
    attr = Occlusion(m.forward).attribute(x, target=target, baselines=fill, perturbations_per_eval=OCCLUSION_BATCH,
                                          sliding_window_shapes=(x.shape[1], win, win),
                                          strides=(x.shape[1], stride, stride))
    with torch.no_grad():
        score = float(m.forward(x)[0, target])
    return attr[0].mean(0), score, f"{win}x{win} px patches, stride {stride}, filled with the image mean ({fill:.2f})"


def to_original(row: int, col: int, size: tuple[int, int], original_shape: tuple[int, int] | None) -> tuple[int, int]:
    """A model-input pixel -> the original image's pixel (inputs are the original squashed to a square)."""
    if original_shape is None:
        return row, col
    (h, w), (oh, ow) = size, original_shape[:2]
    return (min(oh - 1, max(0, round((row + 0.5) * oh / h - 0.5))),
            min(ow - 1, max(0, round((col + 0.5) * ow / w - 0.5))))


def attribute(model: Any, x: torch.Tensor, target: int, method: str = "gradcam",
              original_shape: tuple[int, int] | None = None, layer: str | None = None) -> AttributionMap:
    """The `method` map of logit `target` for one input x [1, C, S, S]; `peak` in `original_shape` pixels if given.

    `layer` (CAMs only): None for the architecture's default (see `_split`), or "blocks.K" for a finer map.
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"attribute takes one image as a [1, C, H, W] tensor, got {getattr(x, 'shape', type(x))}")
    m = resolve(model)
    if method in CAM_METHODS and m.net is None:
        raise ValueError(f"{METHOD_NAMES[method]} needs a timm model (forward_features/forward_head), not a function")
    with torch.inference_mode(False):  # gradients are needed even when the caller serves under inference_mode
        x = x.detach().float().to(m.device).clone()  # clone: a normal tensor, not the caller's inference tensor
        return _attribute(m, x, target, method, original_shape, layer)


def _attribute(m: ModelParts, x: torch.Tensor, target: int, method: str,
               original_shape: tuple[int, int] | None, layer: str | None) -> AttributionMap:
    n = getattr(m.net, "num_classes", None)
    if n is None:
        with torch.no_grad():
            n = int(m.forward(x).shape[1])
    if not 0 <= target < n:
        raise ValueError(f"target {target} is not one of the model's {n} outputs")
    baseline = None
    if method in CAM_METHODS:
        raw, score, layer = _cam(m, x, target, method, layer)
    elif method == "ig":
        raw, score, baseline = _ig(m, x, target)
    else:
        raw, score, baseline = _occlusion(m, x, target)
    if method not in CAM_METHODS:
        layer = None
    up = F.interpolate(F.relu(raw.detach().float())[None, None], size=x.shape[-2:], mode="bilinear",
                       align_corners=False)[0, 0].cpu().numpy()
    raw_max = float(up.max())
    peak = None
    if raw_max > 0:  # the maximum cell of the map as computed (a CAM's coarse grid), at that cell's centre: the
        # upsampled map has a flat top at the image edge, whose first pixel would put the peak on the border
        r, c = np.unravel_index(int(raw.argmax()), raw.shape)
        peak = to_original(int(r), int(c), tuple(raw.shape), original_shape or tuple(x.shape[-2:]))
    norm = (up / raw_max if raw_max > 0 else np.zeros_like(up)).astype(np.float32)
    label = m.labels[target] if m.labels and target < len(m.labels) else str(target)
    return AttributionMap(norm, raw_max, method, target, label, score, peak, baseline, layer)


def overlay(display: np.ndarray, amap: AttributionMap, opacity: float = 0.5, colormap: str = "jet",
            scale: float | None = None) -> np.ndarray:
    """The map blended over the displayed image (grey HxW or RGB HxWx3 uint8) -> RGB uint8 of the same size.

    Colour and opacity both follow value / scale (clipped to 1), so pixels without evidence stay uncovered. `scale`
    is in the map's logit units; None uses the map's own `raw_max` (the usual per-image normalisation). Give a fixed
    scale to compare cases: a weak negative then shows as a faint overlay.
    """
    from matplotlib import colormaps
    from PIL import Image

    if display.ndim == 2 or (display.ndim == 3 and display.shape[2] == 3):
        base = Image.fromarray(np.ascontiguousarray(display, dtype=np.uint8)).convert("RGB")
    else:
        raise ValueError(f"overlay needs a grey HxW or RGB HxWx3 image, got shape {display.shape}")
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if colormap not in colormaps:
        raise ValueError(f"unknown colormap {colormap!r}")
    scale = amap.raw_max if scale is None else float(scale)
    w, h = base.size
    # All per-pixel work at display size (4 Mpx for a 2k radiograph) runs in Pillow's C loops: the level is
    # resized as a float image, quantised to 256 steps, coloured through a palette and alpha-composited.
    level = amap.map * (amap.raw_max / scale) if scale > 0 else np.zeros_like(amap.map)
    steps = Image.fromarray((np.clip(level, 0, 1) * 255).astype(np.float32)).resize((w, h), Image.BILINEAR)
    steps = steps.convert("L")
    lut = (colormaps[colormap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    colour = steps.copy()
    colour.putpalette(lut.tobytes())
    alpha = steps.point([round(opacity * v) for v in range(256)])
    return np.array(Image.composite(colour.convert("RGB"), base, alpha))
