"""Can this attribution map be trusted? The trust panel's three checks, without streamlit.

    report = trust_report(classifier, x, target, "gradcam", boxes=findings, original_shape=(rows, cols))
    for name, passed, verdict in report.checks(): ...

- Model randomisation (Adebayo et al. 2018, cascading): on a deep copy of the model (never the shared one) the head,
  then successive top blocks are re-initialised, and each map is compared with the trained model's map. A map that
  explains the model must change; one that survives randomisation shows image structure, not what the model learnt.
- Deletion / insertion (Petsiuk et al. 2018, RISE): the most-attributed pixels are replaced by a blurred copy
  (deletion) or put back into the blurred image (insertion) in CURVE_STEPS steps; a faithful map drops the finding's
  probability faster, and restores it faster, than the same pixels taken in random order.
- Pointing game (Zhang et al. 2016): is the map's peak inside the finding's box, within a tolerance in pixels?
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage, stats
from torch import nn

from medui.imaging.attribution import METHOD_NAMES, AttributionMap, attribute, resolve

# A randomised map with rank correlation ρ < 0.5 shares under a quarter (ρ² < 0.25) of its rank order with the
# trained map. Methods known to fail the test (guided backprop) keep ρ near 1 under cascading randomisation, those
# that pass fall well below 0.5 within the top few layers (Adebayo et al. 2018, fig. 2), so 0.5 separates the two.
SIMILARITY_THRESHOLD = 0.5
RANDOMISED_STAGES = 4  # head + three top blocks: enough to see the map change, bounded in time
POINTING_TOLERANCE_PX = 15  # the pointing game's usual tolerance (Zhang et al. 2016), in original-image pixels
CURVE_STEPS = 20
CURVE_BATCH = 8  # images per forward pass while tracing the curves (as attribution.IG_BATCH)
FLAT_CURVES = 0.02  # a saturated model's probability barely moves: the curves then cannot tell maps apart
# The "removed" image is a Gaussian blur with sigma = size / 16 (10 px at 160). RISE blurred with sigma 5 at 224
# (size / 45), but that leaves a phantom nodule (5-11 px across at 160 px) recognisable: the shipped model's
# probability never moved, and every curve was flat.
BLUR_FRACTION = 1 / 16


@dataclass(frozen=True)
class Stage:
    """The map after randomising the layers up to and including `layers`, compared with the trained map."""

    layers: str
    spearman: float
    ssim: float


@dataclass(frozen=True)
class Randomisation:
    stages: list[Stage]
    threshold: float
    passed: bool | None
    verdict: str


@dataclass(frozen=True)
class Curves:
    fractions: list[float]  # share of pixels removed (deletion) or inserted (insertion)
    deletion: list[float]  # the finding's probability along each curve
    insertion: list[float]
    deletion_auc: float  # lower is better
    insertion_auc: float  # higher is better
    random_deletion_auc: float  # the same with pixels in random order: the bar to beat
    random_insertion_auc: float
    passed: bool | None  # None: the map is empty (its order is the random one) or the curves are flat
    verdict: str


@dataclass(frozen=True)
class Pointing:
    hit: bool | None  # None: no box for this finding
    distance_px: float | None  # from the peak to the nearest box (0 inside)
    tolerance_px: float
    verdict: str


@dataclass(frozen=True)
class TrustReport:
    method: str
    target_label: str
    probability: float
    raw_max: float
    randomisation: Randomisation
    curves: Curves
    pointing: Pointing

    def checks(self) -> list[tuple[str, bool | None, str]]:
        """(check, passed or None when not applicable, plain-language verdict) for the panel."""
        return [("Model randomisation", self.randomisation.passed, self.randomisation.verdict),
                ("Deletion / insertion", self.curves.passed, self.curves.verdict),
                ("Pointing game", self.pointing.hit, self.pointing.verdict)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- model randomisation ---------------------------------------------------------------------------------------

def _network(model: Any) -> nn.Module:
    if isinstance(getattr(model, "model", None), nn.Module):
        model = model.model
    if not isinstance(model, nn.Module):
        raise ValueError("the randomisation check needs a model with layers, not a function")
    return model


def _cascade(net: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The network's units from the output down: children in order, `blocks`/`stages`/`layers` split per item.

    A unit holding only normalisation (1-D parameters) joins the unit below it, so every stage changes weights.
    """
    units: list[tuple[str, nn.Module]] = []
    for name, child in net.named_children():
        if isinstance(child, nn.Sequential) and name in ("blocks", "stages", "layers"):
            units += [(f"{name}.{i}", c) for i, c in enumerate(child)]
        elif any(True for _ in child.parameters()):
            units.append((name, child))
    out: list[tuple[str, list[nn.Module]]] = []
    pending: list[tuple[str, nn.Module]] = []
    for name, unit in reversed(units):
        pending.append((name, unit))
        if any(p.ndim > 1 for p in unit.parameters()):
            out.append(("+".join(n for n, _ in pending), [u for _, u in pending]))
            pending = []
    return out


def _reinitialise(module: nn.Module, g: torch.Generator) -> None:
    """Untrained values: He-normal weight matrices, zero biases, unit norm scales, reset running statistics."""
    with torch.no_grad():
        for sub in module.modules():
            for name, p in sub.named_parameters(recurse=False):
                if p.ndim > 1:
                    nn.init.kaiming_normal_(p, nonlinearity="relu", generator=g)
                elif name == "weight":
                    p.fill_(1.0)
                else:
                    p.zero_()
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.reset_running_stats()


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two maps in [0, 1] (Wang et al. 2004: Gaussian window sigma 1.5, K1/K2 .01/.03).

    Hand-written (six lines) rather than adding scikit-image as a dependency for one formula.
    """
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = ndimage.gaussian_filter(a, 1.5), ndimage.gaussian_filter(b, 1.5)
    var_a = ndimage.gaussian_filter(a * a, 1.5) - mu_a**2
    var_b = ndimage.gaussian_filter(b * b, 1.5) - mu_b**2
    cov = ndimage.gaussian_filter(a * b, 1.5) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps; 0 when either is flat (a map that vanished has nothing in common)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(stats.spearmanr(a.ravel(), b.ravel()).statistic)


def randomisation_check(model: Any, x: torch.Tensor, target: int, method: str, amap: AttributionMap | None = None,
                        stages: int = RANDOMISED_STAGES, seed: int = 0, layer: str | None = None) -> Randomisation:
    """Cascading model randomisation on a deep copy; passes when the most randomised map has ρ < the threshold."""
    network = _network(model)
    trained = amap or attribute(model, x, target, method, layer=layer)
    if trained.raw_max == 0:
        return Randomisation([], SIMILARITY_THRESHOLD, None, f"Not applicable: the {METHOD_NAMES[method]} map shows "
                             f"no evidence for {trained.target_label}, so there is nothing to compare.")
    twin = copy.deepcopy(network)  # the shared model is only read; all re-initialisation happens here
    net = twin.backbone if hasattr(twin, "backbone") else twin
    cascade = _cascade(net)[:stages]
    if not cascade:
        return Randomisation([], SIMILARITY_THRESHOLD, None, "Not applicable: the model has no weights to randomise.")
    g = torch.Generator().manual_seed(seed)
    done, names = [], []
    for name, modules in cascade:
        for module in modules:
            _reinitialise(module, g)
        names.append(name)
        changed = attribute(twin, x, target, method, layer=layer).map
        done.append(Stage(" → ".join(names), spearman(trained.map, changed), ssim(trained.map, changed)))
    last = done[-1]
    passed = last.spearman < SIMILARITY_THRESHOLD
    first = next((s for s in done if s.spearman < SIMILARITY_THRESHOLD), None)
    if passed:
        verdict = (f"Passes: the map depends on the learnt weights. After randomising {first.layers.split(' → ')[-1]} "
                   f"its rank correlation with the trained map fell to {first.spearman:.2f} (below "
                   f"{SIMILARITY_THRESHOLD}); fully cascaded: {last.spearman:.2f}, SSIM {last.ssim:.2f}.")
    else:
        verdict = (f"Fails: with {len(done)} layer groups randomised the map still has rank correlation "
                   f"{last.spearman:.2f} with the trained one (threshold {SIMILARITY_THRESHOLD}); it shows image "
                   "structure more than what the model learnt. Do not read it as the model's reasons.")
    return Randomisation(done, SIMILARITY_THRESHOLD, passed, verdict)


# ---- deletion / insertion --------------------------------------------------------------------------------------

def _auc(ys: np.ndarray) -> float:
    return float(np.trapezoid(ys, dx=1.0 / (len(ys) - 1)))


def _probabilities(model: Any, logits: torch.Tensor) -> torch.Tensor:
    """The probabilities the page shows: a medui Classifier's calibrated ones, else a sigmoid per output."""
    return model.probabilities(logits) if hasattr(model, "probabilities") else torch.sigmoid(logits)


def deletion_insertion(model: Any, x: torch.Tensor, target: int, amap: AttributionMap, steps: int = CURVE_STEPS,
                       seed: int = 0) -> Curves:
    """Deletion and insertion curves of the map's pixel order and of a random order, all in batched passes."""
    parts = resolve(model)
    x = x.detach().float().cpu()
    size = x.shape[-2:]
    if amap.map.shape != tuple(size):
        raise ValueError(f"the map is {amap.map.shape} but the input is {tuple(size)}")
    sigma = max(1.0, size[-1] * BLUR_FRACTION)
    blurred = torch.from_numpy(ndimage.gaussian_filter(x.numpy(), (0, 0, sigma, sigma))).float()
    rng = np.random.default_rng(seed)
    n = amap.map.size
    ranked = np.lexsort((rng.permutation(n), -amap.map.ravel()))  # ties (a CAM's flat zeros) broken at random
    counts = np.rint(np.linspace(0, n, steps + 1)).astype(int)
    images = []
    for order in (ranked, rng.permutation(n)):
        rank = np.empty(n, int)
        rank[order] = np.arange(n)
        rank = torch.from_numpy(rank.reshape(size))
        masks = torch.stack([rank < k for k in counts])[:, None]  # [steps + 1, 1, H, W]
        images += [torch.where(masks, blurred, x), torch.where(masks, x, blurred)]
    batch = torch.cat(images)
    with torch.no_grad():
        probs = torch.cat([_probabilities(model, parts.forward(chunk.to(parts.device)))[:, target].cpu()
                           for chunk in batch.split(CURVE_BATCH)])
    probs = probs.numpy()
    dele, ins, rdel, rins = probs.reshape(4, steps + 1)
    aucs = [_auc(c) for c in (dele, ins, rdel, rins)]
    flat = float(np.ptp(probs)) < FLAT_CURVES
    passed = None if amap.raw_max == 0 or flat else bool(aucs[0] < aucs[2] and aucs[1] > aucs[3])
    outcome = ("Not applicable (empty map)" if amap.raw_max == 0 else
               f"Not informative (the probability moves by under {FLAT_CURVES} on every curve)" if flat else
               "Passes" if passed else "Fails")
    verdict = (f"{outcome}: removing the most-attributed pixels first gives deletion AUC {aucs[0]:.2f} (random order "
               f"{aucs[2]:.2f}, lower is better); inserting them first gives insertion AUC {aucs[1]:.2f} (random "
               f"order {aucs[3]:.2f}, higher is better).")
    if dele[0] < 0.5:
        verdict += (f" The model does not call {amap.target_label} here (p = {dele[0]:.2f}), so these curves follow "
                    "weak evidence; read them with care.")
    return Curves([float(c / n) for c in counts], dele.tolist(), ins.tolist(), *aucs, passed, verdict)


# ---- pointing game ---------------------------------------------------------------------------------------------

def pointing_game(amap: AttributionMap, boxes: Sequence[Any], tolerance: float = POINTING_TOLERANCE_PX) -> Pointing:
    """Peak within `tolerance` px of a box of the target finding; boxes are `phantom.Finding`s (other labels are
    skipped) or (x0, y0, x1, y1) tuples, in the pixels `amap.peak` is in, x1/y1 exclusive."""
    own = [(b.x0, b.y0, b.x1, b.y1) if hasattr(b, "x0") else tuple(b) for b in boxes
           if getattr(b, "label", amap.target_label) == amap.target_label]
    if not own:
        return Pointing(None, None, tolerance, f"Not applicable: no marked box for {amap.target_label}.")
    if amap.peak is None:
        return Pointing(False, None, tolerance, f"Miss: the map shows no evidence for {amap.target_label}.")
    row, col = amap.peak
    distance = min(float(np.hypot(max(x0 - col, 0, col - (x1 - 1)), max(y0 - row, 0, row - (y1 - 1))))
                   for x0, y0, x1, y1 in own)
    hit = distance <= tolerance
    where = "inside the box" if distance == 0 else f"{distance:.0f} px from the nearest box"
    return Pointing(hit, distance, tolerance, f"{'Hit' if hit else 'Miss'}: the map's peak (row {row}, column {col}) "
                    f"is {where} of {amap.target_label} (tolerance {tolerance:g} px).")


def trust_report(model: Any, x: torch.Tensor, target: int, method: str = "gradcam", *,
                 amap: AttributionMap | None = None, boxes: Sequence[Any] = (),
                 original_shape: tuple[int, int] | None = None, layer: str | None = None) -> TrustReport:
    """All three checks for one finding of one image; pass `amap` when the page already computed it (and the
    same `layer` it used)."""
    amap = amap or attribute(model, x, target, method, original_shape, layer)
    curves = deletion_insertion(model, x, target, amap)
    return TrustReport(method, amap.target_label, curves.deletion[0], amap.raw_max,
                       randomisation_check(model, x, target, method, amap, layer=layer), curves,
                       pointing_game(amap, boxes))
