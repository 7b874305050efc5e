"""ECG rhythm classification: fixed-length multi-lead windows from an NPZ file or recording files (ecg_records.py),
a small 1-D ResNet, class metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)
from torch import nn
from torch.utils.data import Dataset

from medui.training.bases import BaseRef
from medui.training.data import Examples, check_counts, settle_rejections
from medui.training.ecgnet import EcgNet
from medui.training.errors import DatasetError, SpecError
from medui.training.tasks.base import Built, TaskKind

MIN_SAMPLES = 64  # four stride-2 stages need something left to pool


class _Records(Dataset):
    def __init__(self, signals: np.ndarray, labels: np.ndarray) -> None:
        self.signals, self.labels = torch.from_numpy(signals).float(), torch.from_numpy(labels).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"signals": self.signals[i], "labels": self.labels[i]}


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float32), -1).numpy()


def _auroc(y: np.ndarray, probs: np.ndarray) -> float | None:
    """Binary AUROC, or macro one-vs-rest; None when the split lacks a class and it is undefined."""
    try:
        if probs.shape[1] == 2:
            return float(roc_auc_score(y, probs[:, 1]))
        return float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=list(range(probs.shape[1]))))
    except ValueError:
        return None


class EcgTask(TaskKind):
    name = "ecg"
    default_name = "ecg-rhythm"
    sample_path = Path(__file__).resolve().parent.parent / "samples" / "ecg_rhythm.npz"
    # A small net from scratch trains well at 3e-3 (sample: AUROC 1.0 after 15 epochs); IA3 gains need more.
    default_lr: ClassVar[dict[str, float]] = {
        "full": 3e-3, "head-only": 3e-3, "lora": 3e-3, "adalora": 3e-3, "ia3": 1e-2}
    head = "head"
    accepted_bases = ("ecg",)

    def read(self, path: Path, spec: Any) -> Examples:
        if spec.method == "adapter":
            raise SpecError("ecg does not support adapter: Houlsby adapters go in transformer layers and the ECG net "
                            "is a 1-D CNN; use lora or full")
        suffix = path.suffix.lower()
        if suffix in (".zip", ".csv"):
            from medui.training.ecg_records import read_recordings

            return read_recordings(path, spec)
        if suffix != ".npz":
            raise DatasetError(f"{path.name}: ecg datasets are .npz files with 'signals' and 'labels' arrays, a .zip "
                               "of class folders of recordings (sinus/r1.csv) or a .csv manifest with path,label "
                               "(and optional fs) columns")
        with path.open("rb") as handle:  # np.load reads anything that is not a zip or .npy as a pickle
            if handle.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
                raise DatasetError(f"{path.name}: not an .npz file (NumPy's zip of arrays)")
        try:
            with np.load(path, allow_pickle=False) as npz:  # never unpickle: object arrays are refused
                arrays = {key: npz[key] for key in npz.files}
        except ValueError as exc:
            raise DatasetError(f"{path.name}: cannot read without unpickling ({exc}); store labels as a "
                               "string array") from None
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{path.name}: not a readable .npz file ({exc})") from None
        for key in ("signals", "labels"):
            if key not in arrays:
                raise DatasetError(f"{path.name}: no {key!r} array (found: {', '.join(arrays) or 'none'})")
        signals, labels = arrays["signals"], arrays["labels"]
        if signals.ndim == 2:
            signals = signals[:, None, :]  # [records, samples]: one lead
        if signals.ndim != 3 or not np.issubdtype(signals.dtype, np.number):
            raise DatasetError(f"signals must be a numeric array [records, leads, samples]; got shape "
                               f"{arrays['signals'].shape} of {arrays['signals'].dtype}")
        if labels.shape != (len(signals),):
            raise DatasetError(f"labels must be one class name per record, shape ({len(signals)},); got shape "
                               f"{labels.shape} (one-hot or multi-label arrays are not supported)")
        if signals.shape[2] < MIN_SAMPLES:
            raise DatasetError(f"windows of {signals.shape[2]} samples are too short; need at least {MIN_SAMPLES}")
        fs = float(arrays["fs"]) if "fs" in arrays and arrays["fs"].size == 1 else None
        items, keys, rejected = [], [], []
        for i, (signal, label) in enumerate(zip(signals, labels.astype(str))):
            reason = None
            if not label.strip():
                reason = "has no label"
            elif not np.isfinite(signal).all():
                reason = "signal contains NaN or infinite values"
            elif np.all(signal.std(axis=-1) == 0):
                reason = "flat signal (every lead is constant)"
            if reason:
                rejected.append({"row": i, "reason": f"record {i}: {reason}"})
                continue
            items.append(signal.astype(np.float32))
            keys.append(label.strip())
        settle_rejections(rejected, spec.skip_bad_rows)
        counts = dict(sorted(Counter(keys).items()))
        check_counts(counts)
        return Examples(items=items, keys=keys, labels=sorted(counts), counts=counts, rows=len(signals),
                        rejected=rejected, info={"leads": signals.shape[1], "samples": signals.shape[2], "fs": fs})

    def base_model(self, base: BaseRef, labels: list[str], info: dict[str, Any]) -> nn.Module:
        if base.kind == "scratch":
            return EcgNet(info["leads"], len(labels))
        from medui.training.serving import load_for_inference

        model, base_labels = load_for_inference(base.version, merge=True)
        if model.hparams["leads"] != info["leads"]:
            raise DatasetError(f"base {base.id} reads {model.hparams['leads']} leads; the data has {info['leads']}")
        if base_labels != labels:
            model.reset_head(len(labels))
        return model

    def build(self, base: BaseRef, labels: list[str], info: dict[str, Any], spec: Any) -> Built:
        model = self.base_model(base, labels, info)
        return Built(model=model, arch={**model.hparams, "samples": info["samples"], "fs": info["fs"]})

    def fresh(self, arch: dict[str, Any], labels: list[str]) -> nn.Module:
        return EcgNet(arch["leads"], len(labels), width=arch["width"], depth=arch["depth"], dropout=arch["dropout"])

    def encode(self, built: Built, examples: Examples, indices: list[int], spec: Any) -> tuple[Dataset, list]:
        index = {label: i for i, label in enumerate(examples.labels)}
        signals = np.stack([examples.items[i] for i in indices])
        return _Records(signals, np.array([index[examples.keys[i]] for i in indices])), []

    def collator(self, built: Built) -> Callable:
        from transformers import default_data_collator

        return default_data_collator

    def peft_targets(self, model: nn.Module, method: str) -> dict[str, Any]:
        if method == "lora":
            # peft's LoRA wraps nn.Conv1d as well as nn.Linear, so the convolutions adapt too.
            return {"target_modules": r"stem|blocks\.\d+\.conv[12]|embed", "modules_to_save": [self.head]}
        # peft's AdaLoRA and IA3 handle Linear and Conv2d/3d but not nn.Conv1d: only the Linear body layer.
        extra = {"feedforward_modules": []} if method == "ia3" else {}
        return {"target_modules": ["embed"], "modules_to_save": [self.head], **extra}

    def layers(self, model: nn.Module) -> list[str]:
        # The stem counts as the first stage; embed and head sit above the last block and always train.
        return ["stem", *(f"blocks.{i}" for i in range(len(model.blocks)))]

    def eval_metrics(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, float]:
        probs, y = _softmax(logits), np.asarray(label_ids)
        out = {"accuracy": float(accuracy_score(y, probs.argmax(1))),
               "f1_macro": float(f1_score(y, probs.argmax(1), average="macro", zero_division=0))}
        auroc = _auroc(y, probs)
        return out if auroc is None else {**out, "auroc": auroc}

    def test_report(self, logits: Any, label_ids: Any, labels: list[str]) -> dict[str, Any]:
        probs, y = _softmax(logits), np.asarray(label_ids)
        pred, ids = probs.argmax(1), list(range(len(labels)))
        p, r, f, s = precision_recall_fscore_support(y, pred, labels=ids, zero_division=0)
        return {
            "accuracy": float(accuracy_score(y, pred)),
            "f1_macro": float(f.mean()),
            "auroc": _auroc(y, probs),
            "brier": float(brier_score_loss(y, probs, labels=ids)),
            "per_class": {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                  "support": int(s[i])} for i, label in enumerate(labels)},
            "confusion_matrix": confusion_matrix(y, pred, labels=ids).tolist(),
            "confusion_labels": labels,
            "n": len(y),
        }
