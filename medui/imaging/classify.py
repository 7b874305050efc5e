"""Finding probabilities for a displayed radiograph from the production `chest-findings` model (or another name).

    classifier = load_classifier()                 # None when no production version is registered
    result = classifier.classify(display, ds)      # display: open_image(...)[2].image, the rendered 8-bit image

The input is the display rendering (MONOCHROME1 already inverted), resized exactly as the training task does
(`medui.training.tasks.image.resize_grey`). Multi-label models give one calibrated sigmoid per finding (temperature
per finding from calibration.json, fitted on the held-out validation split); a single-label model gives its softmax.
Input contract, checked before inference: a projection radiograph (CR, DX, DR, or no modality for a PNG) in a PA/AP
view is expected. Another modality or view is a warning, not a refusal (the page still shows the image, and a
clinician may want to see the model fail), with text saying the findings are unreliable; a blank or nearly constant
image is refused with ClassifierInputError.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from medui.registry import ModelVersion, RegistryError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

MODEL_NAME = "chest-findings"
CALIBRATION_FILE = "calibration.json"  # {"method": "temperature", "temperature": {finding: T}, ...}
RADIOGRAPH_MODALITIES = ("CR", "DX", "DR")  # DR is not a DICOM modality code, but some exporters write it
VIEWS = ("PA", "AP", "")
MIN_SPREAD = 8  # grey levels between the 1st and 99th percentile; less is a blank or nearly constant image
CLIPPED_SHARE = 0.5  # more than this share of pixels at pure black or white: the window is probably wrong
MAX_ASPECT = 1.6  # a chest film is roughly square; a much longer side is squashed noticeably to fit the model
NO_FINDING = "normal"

_CACHE: dict[tuple[str, str], Classifier] = {}
_LOCK = threading.Lock()


class ClassifierInputError(ValueError):
    """An image the classifier refuses to score; the message is for the user as-is."""


@dataclass(frozen=True)
class Finding:
    label: str
    probability: float  # calibrated


@dataclass
class Classification:
    findings: list[Finding]  # only labels the loaded model was trained on, never "normal"; best first
    model: ModelVersion
    input: torch.Tensor  # [1, 1, S, S] float in [0, 1]: exactly what the model saw
    warnings: list[str] = field(default_factory=list)  # input-contract warnings, specific text


class Classifier:
    """A loaded version: the merged, eval-mode ImageClassifier plus its labels, input size and calibration."""

    def __init__(self, model: torch.nn.Module, labels: list[str], version: ModelVersion,
                 temperature: list[float] | None = None, cam_layers: dict[str, str] | None = None) -> None:
        self.model = model  # shared by every session: never mutated after loading
        self.labels = list(labels)
        self.version = version
        self.image_size = int(model.hparams["image_size"])
        self.multilabel = bool(model.hparams.get("multilabel"))
        self.calibrated = temperature is not None
        self._temperature = torch.tensor(temperature or [1.0] * len(self.labels), dtype=torch.float32)
        self.cam_layers = dict(cam_layers or {})  # finding -> the layer its CAM reads (medui.imaging.cam_layers)

    def prepare(self, display: np.ndarray) -> torch.Tensor:
        """uint8 grey (H, W) (or RGB) display image -> [1, 1, S, S] in [0, 1], as the training task resizes it."""
        from medui.training.tasks.image import resize_grey, to_batch

        return to_batch([resize_grey(np.asarray(display), self.image_size)])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, S, S] -> raw logits [B, len(labels)]; differentiable (no no_grad here: attribution needs it)."""
        return self.model(pixel_values=x).logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities: sigmoid(logit / T) per finding (multi-label), else the softmax."""
        if not self.multilabel:
            return torch.softmax(logits, -1)
        return torch.sigmoid(logits / self._temperature.to(logits.device))

    def classify(self, display: np.ndarray, dataset: Dataset | None = None) -> Classification:
        """Check the input contract, run the model once, and list the findings best first."""
        warnings = check_input(display, dataset)
        x = self.prepare(display)
        with torch.no_grad():
            probs = self.probabilities(self.logits(x))[0].tolist()
        findings = [Finding(label, float(p)) for label, p in zip(self.labels, probs) if label != NO_FINDING]
        findings.sort(key=lambda f: -f.probability)
        return Classification(findings=findings, model=self.version, input=x, warnings=warnings)


def check_input(display: np.ndarray, dataset: Dataset | None = None) -> list[str]:
    """Warnings for an image outside what the model was trained on; ClassifierInputError for one it cannot score."""
    image = np.asarray(display)
    if image.ndim not in (2, 3) or image.shape[0] < 8 or image.shape[1] < 8:
        raise ClassifierInputError(f"expected a 2-D display image of at least 8x8 pixels, got shape {image.shape}")
    step = max(1, max(image.shape[:2]) // 512)  # statistics of ~512x512 pixels: a 2k film costs no more
    grey = image[::step, ::step] if image.ndim == 2 else image[::step, ::step, :3].mean(-1)
    lo, hi = np.percentile(grey, [1, 99])
    if hi - lo < MIN_SPREAD:
        raise ClassifierInputError(f"the image is blank or nearly constant (1st-99th percentile grey levels "
                                   f"{lo:.0f}-{hi:.0f}); there is nothing to classify - check the window or the file")
    warnings = []
    if image.ndim == 3:
        warnings.append("colour image: converted to grey; the model was trained on greyscale radiographs")
    clipped = float(np.mean((grey <= 0) | (grey >= 255)))
    if clipped > CLIPPED_SHARE:
        warnings.append(f"{clipped:.0%} of pixels are pure black or white: the window clips the image, so "
                        "findings may be missed; try the header or auto window")
    aspect = max(image.shape[:2]) / min(image.shape[:2])
    if aspect > MAX_ASPECT:
        warnings.append(f"image aspect ratio {aspect:.1f}:1 is far from a chest film's; it is squashed to a square "
                        "for the model")
    if dataset is not None:
        modality = str(dataset.get("Modality", "") or "").strip().upper()
        if modality and modality not in RADIOGRAPH_MODALITIES:
            warnings.append(f"modality {modality} is not a projection radiograph (CR/DX): the model was trained on "
                            "chest radiographs only, so these findings are unreliable for this image")
        view = str(dataset.get("ViewPosition", "") or "").strip().upper()
        if view not in VIEWS:
            warnings.append(f"view position {view} is not PA or AP: the model was trained on frontal chest films, "
                            "so these findings are unreliable for this view")
        body = str(dataset.get("BodyPartExamined", "") or "").strip().upper()
        if body and body != "CHEST":
            warnings.append(f"body part {body} is not CHEST: the model was trained on chest films only")
    return warnings


def _temperature(mv: ModelVersion, labels: list[str]) -> list[float] | None:
    """Per-finding temperatures from the version's calibration.json (checked by load_for_inference), if it has one."""
    if CALIBRATION_FILE not in {f.path for f in mv.files}:
        return None
    raw = json.loads((mv.directory / CALIBRATION_FILE).read_text(encoding="utf-8"))
    temps = raw.get("temperature") if isinstance(raw, dict) else None
    if not isinstance(temps, dict) or set(temps) != set(labels):
        raise RegistryError(f"{mv.name}/{mv.version} {CALIBRATION_FILE}: needs one temperature per label "
                            f"({', '.join(labels)})")
    values = [temps[label] for label in labels]
    if not all(isinstance(t, (int, float)) and 0 < t < 1e3 for t in values):
        raise RegistryError(f"{mv.name}/{mv.version} {CALIBRATION_FILE}: temperatures must be positive numbers")
    return [float(t) for t in values]


def _ensure_base(mv: ModelVersion) -> None:
    """A shipped model names the ImageNet base by registry id; a fresh MEDUI_HOME registers it from its package."""
    from medui.training.bases import IMAGE_BASE

    if mv.base_model.split("/")[0] == IMAGE_BASE:
        from medui.training.image_base import ensure_base

        ensure_base()


def load_classifier(name: str = MODEL_NAME) -> Classifier | None:
    """The production version through the registry, cached once per process by name+version (a newly promoted
    version is picked up on the next call without a restart); None when no such model is registered."""
    from medui.registry import get_version

    try:
        mv = get_version(name)
    except RegistryError:
        return None  # no such model, or none in production
    key = (mv.name, mv.version)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_version(mv)
        return _CACHE[key]


def load_version(mv: ModelVersion) -> Classifier:
    """One registered image version as a read-only Classifier (uncached: `load_classifier` caches)."""
    from medui.imaging.cam_layers import read_layers
    from medui.training import load_for_inference

    if mv.task != "image":
        raise RegistryError(f"{mv.name}/{mv.version} is a {mv.task} model, not an image classifier")
    _ensure_base(mv)
    model, labels = load_for_inference(mv, merge=True)  # verifies every file's digest first
    for param in model.parameters():
        param.requires_grad_(False)  # shared and read-only; attribution takes gradients w.r.t. the input
    return Classifier(model, labels, mv, _temperature(mv, labels), read_layers(mv, labels))


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
