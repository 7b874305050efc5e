"""Findings and the attribution map for one displayed image: the common path of the `dicom` CLI and the Imaging page.

    found = classify_image(load_classifier(), display, ds)     # findings, model, warnings (no model: a warning)
    label = top_finding(found.findings)                        # the most probable finding other than "normal"
    amap = explain(classifier, found, label, "gradcam", display.shape)
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medui.imaging.decode import Decoded
from medui.imaging.display import Rendering, Window, render
from medui.imaging.phantom import LABEL_COLUMNS, Finding

NO_MODEL = "no imaging model is registered yet"
NOT_FOR_CLINICAL_USE = ("The default chest-findings model was trained on synthetic phantom radiographs only: it "
                        "is a demonstration, not for clinical use. Import or fine-tune your own model for real work.")
NORMAL = "normal"


@dataclass
class ImageFindings:
    """What the classifier said about one image; `classification` is the classifier's own result (None if skipped)."""

    findings: list[dict[str, Any]]  # [{"label", "probability"}], most probable first
    model: dict[str, str] | None  # {"name", "version"} of the model that judged (or refused) the image
    warnings: list[str] = field(default_factory=list)
    classification: Any = None


def model_view(ds: Dataset, decoded: Decoded, shown: Rendering, window: Window, frame: int = 0) -> np.ndarray:
    """The rendering the classifier sees: the header window (as in training), whatever window is on screen."""
    return shown.image if window == "header" else render(ds, decoded, "header", frame=frame).image


def classify_image(classifier: Any, display: np.ndarray, ds: Dataset | None = None) -> ImageFindings:
    """The classifier's findings for one 8-bit display image; a refused input becomes a warning, not an error.

    Images outside the model's input contract (another modality or view) are still classified, with the
    classifier's warning saying the findings are unreliable; only an image it cannot score (blank) is skipped.
    """
    from medui.imaging.classify import ClassifierInputError

    if classifier is None:
        return ImageFindings([], None, [NO_MODEL])
    model = {"name": classifier.version.name, "version": str(classifier.version.version)}
    try:
        result = classifier.classify(display, ds)
    except ClassifierInputError as exc:
        return ImageFindings([], model, [f"not classified: {exc}"])
    findings = [{"label": f.label, "probability": round(float(f.probability), 4)} for f in result.findings]
    findings.sort(key=lambda f: -f["probability"])
    return ImageFindings(findings, model, list(result.warnings), result)


def top_finding(findings: list[dict[str, Any]]) -> str | None:
    """The most probable finding that is not "normal" (findings are sorted), or None."""
    return next((f["label"] for f in findings if f["label"] != NORMAL), None)


# EfficientNet-Lite0's last stage is 5x5 at the shipped model's 160 px: too coarse to point at a nodule (pointing
# game 0.00 on 60 fresh phantoms against 0.77 at blocks.4, stride 16; bench/imaging.py). Its CAMs use blocks.4
# unless the model version names a layer per finding (medui.imaging.cam_layers).
CAM_LAYERS = {"tf_efficientnet_lite0": "blocks.4"}


def cam_layer(classifier: Any, method: str, label: str | None = None) -> str | None:
    """The layer a CAM of `label` reads: the version's own choice for that finding, else the backbone's default;
    None = the architecture's last stage (and for methods without a layer)."""
    from medui.imaging.attribution import CAM_METHODS

    if method not in CAM_METHODS:
        return None
    if label in getattr(classifier, "cam_layers", {}):
        return classifier.cam_layers[label]
    hparams = getattr(getattr(classifier, "model", None), "hparams", {}) or {}
    return CAM_LAYERS.get(hparams.get("backbone", ""))


def explain(classifier: Any, found: ImageFindings, label: str, method: str, shape: tuple[int, ...]) -> Any:
    """The `method` attribution map of `label` for the classified image, its peak in `shape`'s pixels."""
    from medui.imaging.attribution import attribute

    target = list(classifier.labels).index(label)
    return attribute(classifier, found.classification.input, target, method, original_shape=tuple(shape[:2]),
                     layer=cam_layer(classifier, method, label))


def cam_summary(amap: Any) -> dict[str, Any]:
    """The CLI's and the stored analysis's `cam` object: {"label", "method", "peak": [row, col] or None}."""
    return {"label": amap.target_label, "method": amap.method,
            "peak": [int(amap.peak[0]), int(amap.peak[1])] if amap.peak is not None else None}


def image_entry(source: str, ds: Dataset, decoded: Decoded, shown: Rendering, found: ImageFindings,
                cam: dict[str, Any] | None, warnings: list[str]) -> dict[str, Any]:
    """One image as the CLI prints it and the page stores it (the `dicom --json` object)."""
    return {
        "source": source, "sop_instance_uid": str(ds.get("SOPInstanceUID") or "") or None,
        "modality": str(ds.get("Modality") or "") or None, "photometric": str(ds.PhotometricInterpretation),
        "transfer_syntax": decoded.transfer_syntax, "decoder": decoded.decoder, "rows": int(ds.Rows),
        "columns": int(ds.Columns), "frames": decoded.frames, "window": shown.window, "findings": found.findings,
        "cam": cam, "model": found.model, "warnings": warnings,
    }


def labels_in_zip(data: bytes) -> dict[str, list[Finding]]:
    """Boxes from a phantom study ZIP's labels.csv (as `medui imaging synth` writes it), by DICOM file name.

    Empty when the archive has no such file or it is not in that format: the boxes only add the pointing game.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            member = next((i for i in zf.infolist() if PurePosixPath(i.filename).name == "labels.csv"
                           and i.file_size < 1024**2), None)  # a phantom study's labels are a few kB
            text = zf.read(member).decode("utf-8") if member else ""
        rows = list(csv.DictReader(io.StringIO(text)))
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError, csv.Error):
        return {}
    boxes: dict[str, list[Finding]] = {}
    for row in rows:
        if list(row) != LABEL_COLUMNS:
            return {}
        name = PurePosixPath(row["file"] or "").name
        try:
            box = Finding(row["label"], *(int(row[k]) for k in ("x0", "y0", "x1", "y1")))
        except (TypeError, ValueError):  # a `normal` row has an empty box
            boxes.setdefault(name, [])
            continue
        boxes.setdefault(name, []).append(box)
    return boxes
