"""Train the shipped `ecg-rhythm` model on synthetic strips and copy it into the repository's models/ folder.

    python -m medui.signals.ecg.train_default --out models

Generates the synthetic dataset (medui.signals.ecg.synth), trains with the fine-tuning machinery
(`run_job`, task "ecg", method "full") inside a temporary MEDUI_HOME, and copies the registered version's
files unchanged into `<out>/ecg-rhythm/<version>/` with a manifest declaring "stage": "production" and the
job's held-out test metrics. The network is the training task's 1-D ResNet at width 8 (~65k parameters,
~260 KB), one lead in: `rhythm.classify` runs it on each lead of a multi-lead record.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

from medui.training.shipping import ship_version, temporary_home, write_manifest

NAME = "ecg-rhythm"
WIDTH = 8  # the task's default width 16 is ~1 MB of weights; 8 keeps the shipped file small and learns this fine
PROVENANCE_NOTE = "trained on synthetic NeuroKit2-based recordings — not for clinical use"


def train(out: Path, *, n_per_class: int = 80, seed: int = 0, version: str = "1", epochs: float = 25.0,
          fs: float = 100, seconds: float = 10) -> Path:
    """Train, then write `<out>/ecg-rhythm/<version>/`; returns that folder."""
    from medui.signals.ecg import synth

    target = Path(out) / NAME / version
    if target.exists():
        raise SystemExit(f"{target} already exists; remove it first or pass --version")
    with temporary_home("medui-ecg-train-") as tmp:
        data = synth.write_npz(tmp / "ecg_synth.npz", n_per_class, seed, fs=fs, seconds=seconds, leads=1)
        mv, job_id = _run(data, seed, epochs)
        per_class_auroc = _per_class_auroc(job_id, data, list(mv.labels))
        target.parent.mkdir(parents=True, exist_ok=True)
        ship_version(mv.directory, target)
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["version"] = version
    manifest["stage"] = "production"
    manifest["metrics"]["auroc_per_class"] = per_class_auroc
    provenance = manifest.get("provenance", {})
    provenance.pop("data", None)  # a temporary path; the generator and its arguments say how to remake it
    manifest["provenance"] = {
        **provenance,
        "note": PROVENANCE_NOTE,
        "dataset": {"generator": "medui.signals.ecg.synth.make_dataset", "n_per_class": n_per_class, "seed": seed,
                    "fs": fs, "seconds": seconds, "leads": 1, "classes": list(synth.CLASSES),
                    "records": n_per_class * len(synth.CLASSES)},
        "training": {"code": "medui.signals.ecg.train_default", "width": WIDTH,
                     "evaluation": "metrics.accuracy/auroc/per_class are the job's held-out test split"},
        "attribution": "Integrated Gradients (captum) of the predicted class logit, from a flat zero signal after "
                       "per-lead standardisation",
    }
    write_manifest(manifest_path, manifest)
    return target


def _run(data: Path, seed: int, epochs: float) -> Any:
    from medui.registry import get_version
    from medui.training import JobSpec, run_job
    from medui.training.ecgnet import EcgNet
    from medui.training.tasks import ecg as ecg_task

    spec = JobSpec(task="ecg", method="full", data=str(data), name=NAME, epochs=epochs, batch_size=32, seed=seed,
                   patience=6, val_fraction=0.15, test_fraction=0.2, logging_steps=20)
    original = ecg_task.EcgNet
    # The task builds EcgNet(leads, labels) at its default width; the width lands in architecture.json through
    # model.hparams, so `load_for_inference` rebuilds the narrow net without this patch.
    ecg_task.EcgNet = functools.partial(EcgNet, width=WIDTH)
    try:
        result = run_job(spec, actor="train_default")
    finally:
        ecg_task.EcgNet = original
    return get_version(result["model"], result["version"]), result["job_id"]


def _per_class_auroc(job_id: str, data: Path, labels: list[str]) -> dict[str, float]:
    """One-vs-rest AUROC per class on the job's held-out test split (its saved test predictions)."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from medui.training import job_dir

    saved = json.loads((job_dir(job_id) / "test_predictions.json").read_text(encoding="utf-8"))
    with np.load(data, allow_pickle=False) as npz:
        truth = npz["labels"].astype(str)[saved["indices"]]
    probs = torch.softmax(torch.tensor(saved["logits"]), -1).numpy()
    return {label: round(float(roc_auc_score(truth == label, probs[:, i])), 6) for i, label in enumerate(labels)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medui.signals.ecg.train_default", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="models", help="shipped models root (default: models)")
    parser.add_argument("--version", default="1")
    parser.add_argument("--n-per-class", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=25.0)
    args = parser.parse_args(argv)
    target = train(Path(args.out), n_per_class=args.n_per_class, seed=args.seed, version=args.version,
                   epochs=args.epochs)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    metrics = manifest["metrics"]
    size = sum(f["bytes"] for f in manifest["files"])
    print(f"{target}: test accuracy {metrics['accuracy']:.3f}, AUROC {metrics.get('auroc')}, {size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
