"""Image classification with timm: DICOM or PNG/JPEG from a zip of class folders or a CSV, EfficientNet-Lite0 base.

Two dataset layouts:
- single-label (softmax): a zip of class folders (`normal/x.dcm`) or a CSV with `path,label` columns;
- multi-label findings (sigmoid, one binary target per finding): a `labels.csv` with `file,label[,x0,y0,x1,y1]`
  columns (the phantom generator's layout; several rows per file, `normal` with an empty box for a clean image),
  given as the CSV itself or as a zip holding it and the files. Boxes are checked, not trained on.

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

from medui.imaging.classify import MODEL_NAME
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
LABELS_CSV = "labels.csv"
NO_FINDING = "normal"  # a multi-label row meaning "no finding": an all-zero target, never a class of its own
KEY_SEP = "+"  # multi-label stratification key: the image's findings joined, e.g. "effusion+nodule"
BOX_COLUMNS = ("x0", "y0", "x1", "y1")


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
    return resize_grey(grey, size)


def resize_grey(image: np.ndarray, size: int) -> np.ndarray:
    """A display image (uint8 grey or RGB) -> uint8 grey [size, size]: the step training and serving share."""
    from PIL import Image

    return np.asarray(Image.fromarray(_to_grey(image)).resize((size, size), Image.BILINEAR), dtype=np.uint8)


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

    def normalise(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Grey or RGB in [0, 1] -> the backbone's input: grey replicated to 3 channels, backbone mean/std applied."""
        x = pixel_values.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        logits = self.backbone(self.normalise(pixel_values))
        loss = None
        if labels is not None:  # multi-label: one independent sigmoid per finding; else one softmax over classes
            loss = F.binary_cross_entropy_with_logits(logits, labels.float()) if self.hparams.get("multilabel") \
                else F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


# ---- the multi-label findings layout (labels.csv) ---------------------------------------------------------------

def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name}: cannot read as UTF-8 text ({exc})") from None


def _columns(text: str) -> dict[str, str]:
    header = next(csv.reader(io.StringIO(text)), [])
    return {(c or "").strip().lower(): c for c in header}


def _is_findings_csv(text: str) -> bool:
    """A `file,label,...` header is the findings layout; `path,label` stays the single-label one."""
    columns = _columns(text)
    return "file" in columns and "label" in columns and "path" not in columns


def _find_labels_csv(archive: zipfile.ZipFile) -> zipfile.ZipInfo | None:
    """The zip's labels.csv (the shallowest, if several), or None for a zip of class folders."""
    found = [i for i in archive.infolist() if not i.is_dir() and PurePosixPath(i.filename).name.lower() == LABELS_CSV
             and PurePosixPath(i.filename).parts[0] != "__MACOSX"]
    return min(found, key=lambda i: (len(PurePosixPath(i.filename).parts), i.filename)) if found else None


def _folder_loader(folder: Path) -> Callable[[str], Any]:
    """Loader (or rejection reason) of a file named relative to a CSV on disk."""

    def load(rel: str) -> Any:
        file = folder / rel
        if Path(rel).is_absolute():
            return "paths must be relative to the CSV file"
        if not file.is_file():
            return "no such file"
        if file.stat().st_size > MAX_FILE_BYTES:
            return f"over {MAX_FILE_BYTES // 1024**2} MB"
        return file.read_bytes

    return load


def _box_problem(label: str, box: list[str]) -> str | None:
    if not any(box):
        return None
    if label.lower() == NO_FINDING:
        return f"a {NO_FINDING} row has no box (leave x0,y0,x1,y1 empty)"
    try:
        x0, y0, x1, y1 = (int(v) for v in box)
    except ValueError:
        return f"box {','.join(box)} must be four whole pixel numbers x0,y0,x1,y1 (or all empty)"
    if min(x0, y0) < 0 or x1 <= x0 or y1 <= y0:
        return f"box {x0},{y0},{x1},{y1} needs 0 <= x0 < x1 and 0 <= y0 < y1"
    return None


def _findings_entries(where: str, text: str, load: Callable[[str], Any]) -> list[tuple[str, str, Any]]:
    """(file, findings key, loader or rejection reason) per file of a labels.csv, in order of first mention.

    The key is the file's findings joined by KEY_SEP (sorted), or NO_FINDING; it stratifies the split and gives the
    targets. One bad row rejects its whole file: training on a file with a finding dropped would teach a false
    negative.
    """
    reader = csv.DictReader(io.StringIO(text))
    columns = {(c or "").strip().lower(): c for c in reader.fieldnames or []}
    if "file" not in columns or "label" not in columns:
        raise DatasetError(f"{where}: needs a header with file and label columns (found: "
                           f"{', '.join(reader.fieldnames or []) or 'none'})")
    findings: dict[str, set[str]] = {}
    problems: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        name = (row.get(columns["file"]) or "").strip()
        label = (row.get(columns["label"]) or "").strip()
        box = [(row.get(columns[c]) or "").strip() if c in columns else "" for c in BOX_COLUMNS]
        key = name or f"line {line}"
        reason = None
        if not name or not label:
            reason = "needs both a file and a label"
        elif KEY_SEP in label:
            reason = f"label {label!r} contains {KEY_SEP!r}; give one finding per row"
        else:
            reason = _box_problem(label, box)
        labels = findings.setdefault(key, set())
        if reason:
            problems.setdefault(key, f"line {line}: {reason}")
            continue
        labels.add(NO_FINDING if label.lower() == NO_FINDING else label)
        if NO_FINDING in labels and len(labels) > 1:
            problems.setdefault(key, f"line {line}: listed both as {NO_FINDING} and with findings "
                                     f"({', '.join(sorted(labels - {NO_FINDING}))})")
    if not findings:
        raise DatasetError(f"{where}: no rows")
    entries = []
    for name, labels in findings.items():
        key = KEY_SEP.join(sorted(labels - {NO_FINDING})) or NO_FINDING
        entries.append((name, key, problems.get(name) or load(name)))
    return entries


def _finding_counts(keys: list[str]) -> tuple[list[str], dict[str, int]]:
    """(findings, positive images per finding); each finding needs MIN_PER_LABEL positive and negative images."""
    from medui.training.data import MIN_PER_LABEL

    counts = Counter(label for key in keys if key != NO_FINDING for label in key.split(KEY_SEP))
    if not counts:
        raise DatasetError(f"no image has a finding (every row is {NO_FINDING}): nothing to learn")
    check_counts(dict(counts), "positive images")
    for label, count in sorted(counts.items()):
        if len(keys) - count < MIN_PER_LABEL:
            raise DatasetError(f"finding {label!r} is in {count} of {len(keys)} images; at least {MIN_PER_LABEL} "
                               "images without it are needed to learn what it is not")
    return sorted(counts), dict(sorted(counts.items()))


def targets(keys: list[str], labels: list[str]) -> np.ndarray:
    """Multi-hot float targets [images, findings] from the findings keys (NO_FINDING: all zero)."""
    out = np.zeros((len(keys), len(labels)), np.float32)
    index = {label: i for i, label in enumerate(labels)}
    for row, key in enumerate(keys):
        for label in key.split(KEY_SEP) if key != NO_FINDING else ():
            if label in index:
                out[row, index[label]] = 1.0
    return out


class _Images(Dataset):
    def __init__(self, pixels: np.ndarray, labels: np.ndarray) -> None:
        labels = torch.from_numpy(labels)  # class ids [n], or multi-hot float targets [n, findings]
        self.pixels, self.labels = torch.from_numpy(pixels), labels.float() if labels.ndim == 2 else labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[i][None].float() / 255.0, "labels": self.labels[i]}


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 grey images (from `load_pixels`) -> the model's `pixel_values` [n, 1, size, size]."""
    return torch.from_numpy(np.stack(images))[:, None].float() / 255.0


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Top-class confidence vs accuracy in equal-width bins, and the expected calibration error."""
    return binned_calibration(probs.max(1), (probs.argmax(1) == y).astype(float), bins)


def binned_calibration(conf: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Predicted probability vs observed frequency in equal-width bins, and the expected calibration error (ECE).

    Multi-label models pass each finding's probability and its 0/1 truth ("accuracy" is then the positive rate).
    """
    conf, correct = np.asarray(conf, float).ravel(), np.asarray(correct, float).ravel()
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
            ece += n / len(conf) * abs(row["confidence"] - row["accuracy"])
        rows.append(row)
    return {"bins": rows, "ece": float(ece)}


class ImageTask(TaskKind):
    name = "image"
    default_name = MODEL_NAME  # the Imaging page serves this name: a promoted default-named job reaches it
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
                               "nodule/y.png), a .csv with path,label columns, or a findings labels.csv "
                               "(file,label,x0,y0,x1,y1) alone or zipped with its images")
        archive = None
        if suffix == ".zip":
            try:
                archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DatasetError(f"{path.name}: not a readable zip file ({exc})") from None
        try:
            if archive:
                listing = _find_labels_csv(archive)
                multilabel = listing is not None
                entries = self._zipped_findings(path, archive, listing) if multilabel \
                    else self._zip_entries(path, archive)
            else:
                text = _read_text(path)
                multilabel = _is_findings_csv(text)
                entries = _findings_entries(path.name, text, _folder_loader(path.parent.resolve())) if multilabel \
                    else self._csv_entries(path)
            return self._decode(entries, size, spec, multilabel)
        finally:
            if archive:
                archive.close()

    def _decode(self, entries: list[tuple[str, str, Any]], size: int, spec: Any, multilabel: bool = False) -> Examples:
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
        from medui.training.image_base import BACKBONE

        info = {"backbone": BACKBONE, "image_size": size, "formats": dict(kinds)}
        if multilabel:
            labels, counts = _finding_counts(keys)
            info.update(multilabel=True, no_finding=keys.count(NO_FINDING), images=len(keys))
        else:
            counts = dict(sorted(Counter(keys).items()))
            check_counts(counts)
            labels = sorted(counts)
        return Examples(items=items, keys=keys, labels=labels, counts=counts, rows=len(entries),
                        rejected=rejected, info=info)

    @staticmethod
    def _zipped_findings(path: Path, archive: zipfile.ZipFile, listing: zipfile.ZipInfo) -> list[tuple[str, str, Any]]:
        """Findings entries of a zip holding a labels.csv; its `file` column is relative to the CSV's folder."""
        if sum(i.file_size for i in archive.infolist()) > MAX_ZIP_BYTES:
            raise DatasetError(f"{path.name}: over {MAX_ZIP_BYTES // 1024**3} GB uncompressed")
        if listing.file_size > MAX_FILE_BYTES:
            raise DatasetError(f"{path.name}: {listing.filename} is over {MAX_FILE_BYTES // 1024**2} MB")
        try:
            text = archive.read(listing).decode("utf-8-sig")
        except (UnicodeDecodeError, zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{path.name}: cannot read {listing.filename} as UTF-8 text ({exc})") from None
        folder = PurePosixPath(listing.filename).parent
        members = {i.filename: i for i in archive.infolist() if not i.is_dir()}

        def load(rel: str) -> Any:
            info = members.get(str(folder / rel) if str(folder) != "." else rel)
            if info is None:
                return "no such file in the zip"
            if info.file_size > MAX_FILE_BYTES:
                return f"over {MAX_FILE_BYTES // 1024**2} MB"
            return lambda: archive.read(info)

        return _findings_entries(listing.filename, text, load)

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
        if arch.get("multilabel"):  # serving reads it from architecture.json: sigmoid per finding, not softmax
            hparams["multilabel"] = True
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
        model.hparams.pop("multilabel", None)  # the new data decides, not the base's
        if info.get("multilabel"):
            model.hparams["multilabel"] = True
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
        pixels = np.stack([examples.items[i] for i in indices])
        keys = [examples.keys[i] for i in indices]
        if examples.info.get("multilabel"):
            return _Images(pixels, targets(keys, examples.labels)), []
        index = {label: i for i, label in enumerate(examples.labels)}
        return _Images(pixels, np.array([index[key] for key in keys])), []

    def collator(self, built: Built) -> Callable:
        from transformers import default_data_collator

        return default_data_collator

    def peft_targets(self, model: nn.Module, method: str) -> dict[str, Any]:
        extra = {"feedforward_modules": []} if method == "ia3" else {}  # IA3 scales each conv's output channels
        return {"target_modules": self.targets, "modules_to_save": [self.head], **extra}

    # ---- metrics: single-label, the ecg task's (accuracy, macro F1, AUROC OvR, Brier, per-class, confusion) +
    # calibration; multi-label (targets arrive as a [n, findings] matrix), per finding AUROC/Brier + their mean ----

    def eval_metrics(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, float]:
        if np.ndim(label_ids) == 2:
            report = multilabel_report(np.asarray(logits), np.asarray(label_ids), labels)
            flat = {f"auroc_{label}": v for label, v in report["auroc_per_class"].items() if v is not None}
            return {k: report[k] for k in ("accuracy", "f1_macro", "auroc", "brier") if report[k] is not None} | flat
        return EcgTask().eval_metrics(logits, label_ids, labels)

    def test_report(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, Any]:
        if np.ndim(label_ids) == 2:
            return multilabel_report(np.asarray(logits), np.asarray(label_ids), labels)
        report = EcgTask().test_report(logits, label_ids, labels)
        return {**report, "calibration": reliability(_softmax(np.asarray(logits)), np.asarray(label_ids))}


def sigmoid(logits: np.ndarray, temperature: np.ndarray | float = 1.0) -> np.ndarray:
    # float64: in float32 large logits saturate to exactly 1.0, and the ties would blur AUROC
    return torch.sigmoid(torch.as_tensor(np.asarray(logits, np.float64) / temperature)).numpy()


def multilabel_report(logits: np.ndarray, y: np.ndarray, labels: list[str],
                      temperature: np.ndarray | float = 1.0) -> dict[str, Any]:
    """Per finding AUROC, Brier, precision/recall/F1 at 0.5, and their means; calibration pooled and per finding."""
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    probs, y = sigmoid(logits, temperature), np.asarray(y).astype(int)
    per, aurocs = {}, {}
    for i, label in enumerate(labels):
        truth, p = y[:, i], probs[:, i]
        aurocs[label] = float(roc_auc_score(truth, p)) if 0 < truth.sum() < len(truth) else None  # else undefined
        prec, rec, f1, _ = precision_recall_fscore_support(truth, p >= 0.5, average="binary", zero_division=0)
        per[label] = {"auroc": aurocs[label], "brier": float(np.mean((p - truth) ** 2)), "precision": float(prec),
                      "recall": float(rec), "f1": float(f1), "support": int(truth.sum()),
                      "ece": binned_calibration(p, truth)["ece"]}
    defined = [v for v in aurocs.values() if v is not None]
    return {
        "multilabel": True,
        "auroc": float(np.mean(defined)) if defined else None,  # mean over findings
        "auroc_per_class": aurocs,
        "brier": float(np.mean((probs - y) ** 2)),
        "accuracy": float(np.mean(((probs >= 0.5) == y).all(1))),  # exact match: every finding right
        "f1_macro": float(np.mean([v["f1"] for v in per.values()])),
        "per_class": per,
        "calibration": {**binned_calibration(probs, y), "per_class": {
            label: binned_calibration(probs[:, i], y[:, i]) for i, label in enumerate(labels)}},
        "n": len(y),
    }


def fit_temperature(logits: np.ndarray, y: np.ndarray, prior_sd: float = 0.5) -> list[float]:
    """One temperature per finding: sigmoid(logit / T) fitted by binary cross-entropy (Guo et al. 2017), with a
    normal prior N(0, prior_sd) on log T (a MAP fit).

    Temperature scaling is a one-parameter fit, so it keeps each finding's ranking (its AUROC) and cannot overfit the
    way Platt's two parameters or isotonic regression can on a small validation split. The prior matters when the
    split separates a finding perfectly: plain maximum likelihood then drives T towards 0 (infinitely sharp, wrongly
    certain on new images); the prior keeps T near 1 unless the data show a real miscalibration.
    """
    from scipy.optimize import minimize_scalar

    out = []
    logits, y = np.asarray(logits, float), np.asarray(y, float)
    for z, t in zip(logits.T, y.T):
        def loss(log_t: float, z=z, t=t) -> float:
            s = z / np.exp(log_t)
            nll = np.mean(np.logaddexp(0, s) - t * s)  # BCE with logits, numerically stable
            return float(nll + log_t**2 / (2 * prior_sd**2 * len(z)))

        out.append(float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x)))
    return out
