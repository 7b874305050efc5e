"""Image classification with timm: DICOM or PNG/JPEG from a zip of class folders or a CSV, EfficientNet-Lite0 base.

Input pipeline, the same for training and serving (`load_pixels` + `ImageClassifier.forward`):
DICOM -> medui.imaging read/decode/render (header window, auto when the header has none) -> 8-bit grey;
PNG/JPEG -> Pillow, converted to 8-bit grey. Then resized (bilinear, squashed to a square) to `image_size`
and, inside the model, replicated to 3 channels and normalised with the backbone's own mean/std. Replicating
(rather than `in_chans=1` with a summed stem) keeps the registered base tensor-for-tensor equal to the package
weights and costs only the stem's 3x3x3 conv; the two are mathematically the same model.

Batch norm: with every method but `full` the backbone's BN layers stay in eval mode while training, so their
running statistics (part of the frozen base, not of the adapter or head) do not drift and a reloaded
adapter or head reproduces the trained model exactly.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from medui.training.bases import BaseRef
from medui.training.data import Examples, check_counts, settle_rejections
from medui.training.errors import DatasetError
from medui.training.tasks.base import Built, TaskKind
from medui.training.tasks.ecg import EcgTask, _softmax

DEFAULT_SIZE = 224  # JobSpec.image_size = 0 means this
DICOM_SUFFIXES = (".dcm", ".dicom", "")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_FILE_BYTES = 64 * 1024**2  # one image; bigger members of a zip are rejected, not read
MAX_ZIP_BYTES = 8 * 1024**3  # all members together, uncompressed
MAX_PIXELS = 8192 * 8192  # decompression-bomb guard for PNG/JPEG
CALIBRATION_BINS = 10


def _to_grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = image[..., :3].astype(np.float32).mean(-1)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8) if image.dtype != np.uint8 else image


def load_pixels(data: bytes, name: str, size: int) -> np.ndarray:
    """One file's bytes -> uint8 grey [size, size]. ValueError (message safe to show) when it is not a usable image."""
    suffix = PurePosixPath(name).suffix.lower()
    is_dicom = data[128:132] == b"DICM"
    if suffix in RASTER_SUFFIXES and not is_dicom:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ValueError(f"image of {img.width}x{img.height} pixels is too large")
                grey = np.asarray(img.convert("L"))
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"not a readable {suffix[1:].upper()} image ({type(exc).__name__})") from None
    elif is_dicom or suffix in DICOM_SUFFIXES:
        from medui.imaging import ImageRefused, decode, read, render

        try:
            ds = read(data, PurePosixPath(name).name or "image.dcm")
            grey = _to_grey(render(ds, decode(ds, 0), "header").image)
        except ImageRefused as exc:
            raise ValueError(f"DICOM refused ({exc.reason}): {exc}") from None
    else:
        raise ValueError(f"not an image file ({suffix or 'no extension'}); use DICOM, PNG or JPEG")
    from PIL import Image

    return np.asarray(Image.fromarray(grey).resize((size, size), Image.BILINEAR), dtype=np.uint8)


class ImageClassifier(nn.Module):
    """A timm backbone behind a Trainer-friendly forward: uint8-range grey or RGB in [0, 1] -> logits (+ loss)."""

    main_input_name = "pixel_values"

    def __init__(self, backbone: nn.Module, hparams: dict[str, Any]) -> None:
        super().__init__()
        # Not `config`: Trainer and peft take a `.config` attribute for a Hugging Face PretrainedConfig.
        self.hparams = dict(hparams)
        self.backbone = backbone
        self.freeze_norm = False
        # Not persistent: the state dict stays exactly timm's, so bases and checkpoints load strictly.
        self.register_buffer("mean", torch.tensor(hparams["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(hparams["std"]).view(1, 3, 1, 1), persistent=False)

    def reset_head(self, num_labels: int) -> None:
        self.backbone.reset_classifier(num_labels)
        self.hparams["num_labels"] = num_labels

    def train(self, mode: bool = True) -> ImageClassifier:
        super().train(mode)
        if mode and self.freeze_norm:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        x = pixel_values.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        logits = self.backbone((x - self.mean) / self.std)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class _Images(Dataset):
    def __init__(self, pixels: np.ndarray, labels: np.ndarray) -> None:
        self.pixels, self.labels = torch.from_numpy(pixels), torch.from_numpy(labels).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[i][None].float() / 255.0, "labels": self.labels[i]}


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 grey images (from `load_pixels`) -> the model's `pixel_values` [n, 1, size, size]."""
    return torch.from_numpy(np.stack(images))[:, None].float() / 255.0


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Top-class confidence vs accuracy in equal-width bins, and the expected calibration error."""
    conf, correct = probs.max(1), (probs.argmax(1) == y).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        row = {"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n,
               "confidence": float(conf[mask].mean()) if n else None,
               "accuracy": float(correct[mask].mean()) if n else None}
        if n:
            ece += n / len(y) * abs(row["confidence"] - row["accuracy"])
        rows.append(row)
    return {"bins": rows, "ece": float(ece)}


class ImageTask(TaskKind):
    name = "image"
    default_name = "image-classifier"
    sample_path = Path(__file__).resolve().parent.parent / "samples" / "image_phantoms.zip"
    default_lr: ClassVar[dict[str, float]] = {
        "full": 3e-4, "head-only": 1e-3, "lora": 1e-3, "adalora": 1e-3, "ia3": 1e-2}
    head = "backbone.classifier"
    accepted_bases = ("image",)
    image_size: ClassVar[int] = DEFAULT_SIZE
    # peft wraps Linear and Conv2d for LoRA, AdaLoRA (SVDConv2d) and IA3: the pointwise 1x1 convolutions of every
    # block and conv_head. Depthwise 3x3/5x5 convs and the stem are left frozen (tiny, and grouped convs are
    # not adapted by every peft method).
    targets = r"backbone\.(blocks\.\d+\.\d+\.conv_(pw|pwl)|conv_head)"

    def size(self, spec: Any) -> int:
        return int(spec.image_size or self.image_size)

    # ---- data ------------------------------------------------------------------------------------------------

    def read(self, path: Path, spec: Any) -> Examples:
        size = self.size(spec)
        suffix = path.suffix.lower()
        if suffix not in (".zip", ".csv"):
            raise DatasetError(f"{path.name}: image datasets are a .zip of class folders (normal/x.dcm, "
                               "nodule/y.png) or a .csv with path,label columns")
        archive = None
        if suffix == ".zip":
            try:
                archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DatasetError(f"{path.name}: not a readable zip file ({exc})") from None
        try:
            entries = self._zip_entries(path, archive) if archive else self._csv_entries(path)
            return self._decode(entries, size, spec)
        finally:
            if archive:
                archive.close()

    def _decode(self, entries: list[tuple[str, str, Any]], size: int, spec: Any) -> Examples:
        items, keys, rejected, kinds = [], [], [], Counter()
        for row, (name, label, load) in enumerate(entries, start=1):
            reason = None
            if isinstance(load, str):
                reason = load
            else:
                try:
                    pixels = load_pixels(load(), name, size)
                except (ValueError, OSError, zipfile.BadZipFile) as exc:  # BadZipFile: a corrupt member
                    reason = str(exc)
            if reason:
                rejected.append({"row": row, "file": name, "reason": f"{name}: {reason}"})
                continue
            items.append(pixels)
            keys.append(label)
            kinds["dicom" if PurePosixPath(name).suffix.lower() not in RASTER_SUFFIXES else "raster"] += 1
        settle_rejections(rejected, spec.skip_bad_rows)
        counts = dict(sorted(Counter(keys).items()))
        check_counts(counts)
        from medui.training.image_base import BACKBONE

        return Examples(items=items, keys=keys, labels=sorted(counts), counts=counts, rows=len(entries),
                        rejected=rejected, info={"backbone": BACKBONE, "image_size": size, "formats": dict(kinds)})

    @staticmethod
    def _zip_entries(path: Path, archive: zipfile.ZipFile) -> list[tuple[str, str, Any]]:
        """(member name, class folder, loader or rejection reason) for every file of the zip, in zip order."""
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
            raise DatasetError(f"{path.name}: over {MAX_ZIP_BYTES // 1024**3} GB uncompressed")
        entries = []
        for info in infos:
            parts = PurePosixPath(info.filename).parts
            if parts[0] == "__MACOSX" or parts[-1].startswith("."):
                continue  # Finder's resource forks and dot files are not data
            label = parts[-2].strip() if len(parts) >= 2 else ""
            if not label:
                entries.append((info.filename, "", "not inside a class folder (zip layout: CLASS/FILE)"))
            elif info.file_size > MAX_FILE_BYTES:
                entries.append((info.filename, label, f"over {MAX_FILE_BYTES // 1024**2} MB"))
            else:
                entries.append((info.filename, label, lambda info=info: archive.read(info)))
        if not entries:
            raise DatasetError(f"{path.name}: the zip holds no files")
        return entries

    @staticmethod
    def _csv_entries(path: Path) -> list[tuple[str, str, Any]]:
        """(path as written, label, loader or rejection reason) per row; paths are relative to the CSV's folder."""
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path.name}: cannot read as UTF-8 text ({exc})") from None
        reader = csv.DictReader(io.StringIO(text))
        columns = {(c or "").strip().lower(): c for c in reader.fieldnames or []}
        if "path" not in columns or "label" not in columns:
            raise DatasetError(f"{path.name}: needs a header with path and label columns "
                               f"(found: {', '.join(reader.fieldnames or []) or 'none'})")
        folder, entries = path.parent.resolve(), []
        for line, row in enumerate(reader, start=2):
            rel, label = (row.get(columns["path"]) or "").strip(), (row.get(columns["label"]) or "").strip()
            name = rel or f"line {line}"
            file = folder / rel
            if not rel or not label:
                entries.append((name, label, f"line {line}: needs both a path and a label"))
            elif Path(rel).is_absolute():
                entries.append((name, label, f"line {line}: paths must be relative to the CSV file"))
            elif not file.is_file():
                entries.append((name, label, f"line {line}: no such file"))
            elif file.stat().st_size > MAX_FILE_BYTES:
                entries.append((name, label, f"line {line}: over {MAX_FILE_BYTES // 1024**2} MB"))
            else:
                entries.append((name, label, file.read_bytes))
        if not entries:
            raise DatasetError(f"{path.name}: no rows")
        return entries

    # ---- model -----------------------------------------------------------------------------------------------

    def _classifier(self, num_classes: int, arch: dict[str, Any]) -> ImageClassifier:
        from medui.training.image_base import BACKBONE, timm_backbone

        if arch.get("backbone", BACKBONE) != BACKBONE:
            raise DatasetError(f"backbone {arch['backbone']!r} is not supported (only {BACKBONE})")
        backbone = timm_backbone(num_classes)
        cfg = backbone.pretrained_cfg
        hparams = {"backbone": BACKBONE, "image_size": int(arch.get("image_size", DEFAULT_SIZE)),
                   "mean": list(arch.get("mean", cfg["mean"])), "std": list(arch.get("std", cfg["std"])),
                   "num_labels": num_classes}
        return ImageClassifier(backbone, hparams)

    def base_model(self, base: BaseRef, labels: list[str], info: dict[str, Any]) -> nn.Module:
        from medui.registry import load_state_dict

        mv = base.version
        if mv is not None and mv.method == "imported":  # the ImageNet base (or another timm lite0 import)
            model = self._classifier(1000, info)
            tensors = load_state_dict(mv)
            try:
                model.backbone.load_state_dict(tensors, strict=True)
            except RuntimeError as exc:
                raise DatasetError(f"base {base.id}: its weights do not fit {model.hparams['backbone']} "
                                   f"({str(exc).splitlines()[0]})") from None
            model.reset_head(len(labels))
            return model
        from medui.training.serving import load_for_inference

        model, base_labels = load_for_inference(mv, merge=True)
        model.hparams["image_size"] = int(info.get("image_size", model.hparams["image_size"]))
        if base_labels != labels:
            model.reset_head(len(labels))
        return model

    def build(self, base: BaseRef, labels: list[str], info: dict[str, Any], spec: Any) -> Built:
        model = self.base_model(base, labels, info)
        model.freeze_norm = spec.method != "full"
        return Built(model=model, arch=dict(model.hparams))

    def fresh(self, arch: dict[str, Any], labels: list[str]) -> nn.Module:
        return self._classifier(len(labels), arch)

    def encode(self, built: Built, examples: Examples, indices: list[int], spec: Any) -> tuple[Dataset, list]:
        index = {label: i for i, label in enumerate(examples.labels)}
        pixels = np.stack([examples.items[i] for i in indices])
        return _Images(pixels, np.array([index[examples.keys[i]] for i in indices])), []

    def collator(self, built: Built) -> Callable:
        from transformers import default_data_collator

        return default_data_collator

    def peft_targets(self, model: nn.Module, method: str) -> dict[str, Any]:
        extra = {"feedforward_modules": []} if method == "ia3" else {}  # IA3 scales each conv's output channels
        return {"target_modules": self.targets, "modules_to_save": [self.head], **extra}

    # ---- metrics: the ecg task's (accuracy, macro F1, AUROC OvR, Brier, per-class, confusion) + calibration ----

    def eval_metrics(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, float]:
        return EcgTask().eval_metrics(logits, label_ids, labels)

    def test_report(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, Any]:
        report = EcgTask().test_report(logits, label_ids, labels)
        return {**report, "calibration": reliability(_softmax(np.asarray(logits)), np.asarray(label_ids))}
