"""Train the shipped `chest-findings` model on synthetic phantoms and copy it into the repository's models/ folder.

    python -m medui.imaging.train_default --out models

Generates phantom radiographs (medui.imaging.phantom, seeded), trains a LoRA adapter plus a fresh sigmoid head over
the ImageNet EfficientNet-Lite0 base with the fine-tuning machinery (`run_job`, task "image", multi-label labels.csv)
inside a temporary MEDUI_HOME, fits one temperature per finding on the job's held-out validation split, measures
the model on a fresh phantom set drawn with another seed, copies the registered version's files into
`<out>/chest-findings/<version>/` with calibration.json added and a manifest declaring "stage": "production", and
picks each finding's Grad-CAM layer on validation phantoms (attribution.json, medui.imaging.cam_layers).
Only the adapter and head ship (~1 MB); the 18 MB base is registered from its pip package on first use.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from medui.training.shipping import ship_version, temporary_home, write_manifest

NAME = "chest-findings"
IMAGE_SIZE = 160  # 5x5 last-stage maps for Grad-CAM; nodules of 1.5-3.5% of the film are 5-11 px across at 160
PHANTOM_SIZE = 384  # rendered larger, then resized like any upload
# LoRA on the pointwise convolutions of the last stages only: backward stops there, which halves the CPU cost per
# step, and those stages hold the object-level features a finding needs (the early ones are generic edges).
TARGETS = r"backbone\.(blocks\.[3-6]\.\d+\.conv_(pw|pwl)|conv_head)"
PROVENANCE_NOTE = "trained on synthetic phantom radiographs — not for clinical use"


def train(out: Path, *, n: int = 320, seed: int = 0, test_n: int = 100, test_seed: int = 1000, version: str = "1",
          epochs: float = 5.0, image_size: int = IMAGE_SIZE, phantom_size: int = PHANTOM_SIZE,
          cam_layer_images: int = 60) -> Path:
    """Train, calibrate, evaluate on a fresh set, then write `<out>/chest-findings/<version>/`; returns that folder."""
    from medui.imaging.phantom import generate
    from medui.training import load_for_inference

    target = Path(out) / NAME / version
    if target.exists():
        raise SystemExit(f"{target} already exists; remove it first or pass --version")
    with temporary_home("medui-chest-train-") as tmp:
        started = time.time()
        data = generate(n, seed, tmp / "train", phantom_size)
        fresh = generate(test_n, test_seed, tmp / "fresh", phantom_size)
        mv, spec = _run(data, seed, epochs, image_size)
        model, labels = load_for_inference(mv, merge=True)
        calibration, fresh_metrics = _calibrate_and_evaluate(model, labels, spec, fresh)
        elapsed = time.time() - started
        target.parent.mkdir(parents=True, exist_ok=True)
        ship_version(mv.directory, target)
    _write_manifest(target, version, calibration, fresh_metrics, {
        "generator": "medui.imaging.phantom.generate", "seed": seed, "images": n, "phantom_size": phantom_size,
        "fresh_test": {"seed": test_seed, "images": test_n}, "training_and_evaluation_s": round(elapsed, 1)})
    return select_cam_layers(target, cam_layer_images)


def recalibrate(target: Path) -> Path:
    """Refit the temperatures and the fresh-set figures of an already written version, from the phantoms its
    manifest's provenance regenerates (the same seeds, so the same validation split); the weights are untouched."""
    from medui.imaging.phantom import generate
    from medui.registry.manifest import read_manifest
    from medui.training import JobSpec, load_for_inference
    from medui.training.image_base import ensure_base

    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    dataset, job = manifest["provenance"]["dataset"], manifest["provenance"]["spec"]
    with temporary_home("medui-chest-train-") as tmp:
        data = generate(dataset["images"], dataset["seed"], tmp / "train", dataset["phantom_size"])
        fresh = generate(dataset["fresh_test"]["images"], dataset["fresh_test"]["seed"], tmp / "fresh",
                         dataset["phantom_size"])
        spec = JobSpec(task="image", data=str(data), image_size=job["image_size"], seed=job["seed"],
                       val_fraction=job["val_fraction"], test_fraction=job["test_fraction"])
        ensure_base()
        model, labels = load_for_inference(read_manifest(target, shipped=True), merge=True)
        calibration, fresh_metrics = _calibrate_and_evaluate(model, labels, spec, fresh)
    _write_manifest(target, manifest["version"], calibration, fresh_metrics, dataset)
    return target


def _run(data: Path, seed: int, epochs: float, image_size: int) -> tuple[Any, Any]:
    from medui.registry import get_version
    from medui.training import JobSpec, run_job
    from medui.training.tasks.image import ImageTask

    spec = JobSpec(task="image", method="lora", data=str(data), name=NAME, image_size=image_size, epochs=epochs,
                   batch_size=16, lr=3e-3, seed=seed, patience=2, val_fraction=0.15, test_fraction=0.15,
                   logging_steps=5, lora_r=8, lora_alpha=16)
    original = ImageTask.targets
    # The regex lands in adapter_config.json, so `load_for_inference` rebuilds the same adapter without this patch.
    ImageTask.targets = TARGETS
    try:
        result = run_job(spec, actor="train_default")
    finally:
        ImageTask.targets = original
    return get_version(result["model"], result["version"]), spec


def _logits(model: Any, items: list[np.ndarray]) -> np.ndarray:
    import torch

    from medui.training.tasks.image import to_batch

    with torch.no_grad():
        return np.concatenate([model(pixel_values=to_batch(items[i:i + 32])).logits.numpy()
                               for i in range(0, len(items), 32)])


def _calibrate_and_evaluate(model: Any, labels: list[str], spec: Any, fresh: Path) -> tuple[dict, dict]:
    """Temperatures fitted on the validation split; ECE before/after on validation, test split and the fresh set."""
    from medui.training.data import split
    from medui.training.tasks.image import ImageTask, fit_temperature, multilabel_report, targets

    task = ImageTask()
    examples = task.read(Path(spec.data), spec)
    splits = split(examples.keys, spec.seed, spec.val_fraction, spec.test_fraction)  # the job's own split

    def logits_and_truth(name: str) -> tuple[np.ndarray, np.ndarray]:
        idx = splits[name]
        return _logits(model, [examples.items[i] for i in idx]), targets([examples.keys[i] for i in idx], labels)

    val_logits, val_y = logits_and_truth("validation")
    test_logits, test_y = logits_and_truth("test")
    temperature = fit_temperature(val_logits, val_y)
    fresh_examples = task.read(fresh, spec)
    fresh_logits, fresh_y = _logits(model, fresh_examples.items), targets(fresh_examples.keys, labels)
    t = np.array(temperature)

    def ece(logits: np.ndarray, y: np.ndarray, temp: Any) -> float:
        return round(multilabel_report(logits, y, labels, temp)["calibration"]["ece"], 4)

    calibration = {
        "method": "temperature", "temperature": dict(zip(labels, [round(v, 4) for v in temperature])),
        "fitted_on": f"validation split of the training job ({len(val_y)} images)",
        "ece": {"validation": {"before": ece(val_logits, val_y, 1.0), "after": ece(val_logits, val_y, t)},
                "test_split": {"before": ece(test_logits, test_y, 1.0), "after": ece(test_logits, test_y, t)},
                "fresh_test": {"before": ece(fresh_logits, fresh_y, 1.0), "after": ece(fresh_logits, fresh_y, t)}},
    }
    report = multilabel_report(fresh_logits, fresh_y, labels, t)
    fresh_metrics = {k: report[k] for k in ("auroc", "auroc_per_class", "brier", "accuracy", "f1_macro", "n")}
    fresh_metrics["ece"] = report["calibration"]["ece"]
    fresh_metrics["inference_ms_per_image"] = _inference_ms(model, fresh_examples.items[:8])
    return calibration, fresh_metrics


def _inference_ms(model: Any, items: list[np.ndarray]) -> float:
    """Median single-image forward time after one warm-up (this machine; for the README, not a contract)."""
    import torch

    from medui.training.tasks.image import to_batch

    times = []
    with torch.no_grad():
        model(pixel_values=to_batch(items[:1]))
        for item in items:
            started = time.perf_counter()
            model(pixel_values=to_batch([item]))
            times.append((time.perf_counter() - started) * 1000)
    return round(float(np.median(times)), 1)


def select_cam_layers(target: Path, n: int = 60) -> Path:
    """Choose each finding's CAM layer on validation phantoms (medui.imaging.cam_layers) and ship the choice as
    attribution.json in the written version; the weights are untouched."""
    from medui.imaging.cam_layers import ATTRIBUTION_FILE, select_layers
    from medui.imaging.classify import load_version
    from medui.registry.manifest import read_manifest

    with temporary_home("medui-chest-layers-"):
        chosen = select_layers(load_version(read_manifest(target, shipped=True)), n)
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    _add_file(manifest, target, ATTRIBUTION_FILE, chosen)
    manifest["provenance"]["attribution"] = f"{ATTRIBUTION_FILE}: each finding's Grad-CAM layer, chosen by the " \
                                            "pointing game on validation phantoms (medui.imaging.cam_layers)"
    write_manifest(manifest_path, manifest)
    return target


def _add_file(manifest: dict, target: Path, name: str, content: dict) -> None:
    """Write `content` as the version's JSON file `name` and list it (digest, size) in the manifest's files."""
    from medui.registry.weights import sha256_file

    path = target / name
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    manifest["files"] = sorted([*[f for f in manifest["files"] if f["path"] != name],
                                {"path": name, "sha256": sha256_file(path), "bytes": path.stat().st_size}],
                               key=lambda f: f["path"])


def _write_manifest(target: Path, version: str, calibration: dict, fresh: dict, dataset: dict) -> None:
    from medui.imaging.classify import CALIBRATION_FILE as calibration_file

    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["version"] = version
    manifest["stage"] = "production"
    _add_file(manifest, target, calibration_file, calibration)
    manifest["metrics"]["fresh_test"] = fresh
    manifest["metrics"]["calibration_ece"] = calibration["ece"]
    provenance = manifest.get("provenance", {})
    provenance.pop("data", None)  # a temporary path; the generator and its arguments say how to remake it
    manifest["provenance"] = {
        **provenance,
        "note": PROVENANCE_NOTE,
        "dataset": dataset,
        "training": {"code": "medui.imaging.train_default", "lora_targets": TARGETS,
                     "evaluation": "metrics.* are the job's held-out test split (uncalibrated); metrics.fresh_test "
                                   "is a fresh phantom set with another seed, calibrated"},
        "calibration": f"{calibration_file}: one temperature per finding, fitted (MAP, prior on log T) on the "
                       "validation split",
    }
    write_manifest(manifest_path, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medui.imaging.train_default", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="models", help="shipped models root (default: models)")
    parser.add_argument("--version", default="1")
    parser.add_argument("--n", type=int, default=320, help="training phantoms (split train/validation/test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-n", type=int, default=100, help="fresh phantoms for the final measurement")
    parser.add_argument("--test-seed", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=5.0)
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--recalibrate", action="store_true",
                        help="refit calibration and fresh-set figures of the existing <out>/chest-findings/<version>")
    parser.add_argument("--select-cam-layers", action="store_true",
                        help="choose each finding's Grad-CAM layer for the existing <out>/chest-findings/<version>")
    args = parser.parse_args(argv)
    if args.recalibrate:
        target = recalibrate(Path(args.out) / NAME / args.version)
    elif args.select_cam_layers:
        target = select_cam_layers(Path(args.out) / NAME / args.version)
    else:
        target = train(Path(args.out), n=args.n, seed=args.seed, test_n=args.test_n, test_seed=args.test_seed,
                       version=args.version, epochs=args.epochs, image_size=args.image_size)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    fresh, size = manifest["metrics"]["fresh_test"], sum(f["bytes"] for f in manifest["files"])
    print(f"{target}: fresh-set mean AUROC {fresh['auroc']:.3f} {fresh['auroc_per_class']}, "
          f"ECE {manifest['metrics']['calibration_ece']}, {size / 1024:.0f} KB, "
          f"{fresh['inference_ms_per_image']} ms/image")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
