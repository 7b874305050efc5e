"""Imaging latency: `python bench/imaging.py [--json] [--repeat N] [--images N] [--ig-images N]`.

1. Display: per file, median milliseconds of MedUI's read → decode (preferred plugin) → render against plain pydicom
   (dcmread → pixel_array → apply_modality_lut → apply_voi_lut), on pydicom's and pydicom-data's test images, first
   frame only for MedUI (what the viewer shows) and every frame for plain pydicom (what `pixel_array` does).
2. Grad-CAM: median ms per image of `medui.imaging.attribution` against pytorch-grad-cam's `GradCAM` on the same
   weights, layer (the last stage, `backbone.bn2`) and --images phantom radiographs, with the maps' correlation.
   The model is the registered `chest-findings` classifier when there is one, else its architecture untrained at
   256 px (the same cost per image). pytorch-grad-cam runs on a deep copy: it hooks the model and needs gradients
   through its parameters, which the shared classifier has switched off.
3. Integrated Gradients throughput (images/s, captum, 32 steps, batched) on --ig-images of the same images.
4. Pointing game (only with a registered model): on --pointing fresh phantom DICOMs (seed 777, 512 px, rendered with
   their header window as in training), the share of marked findings whose Grad-CAM peak is inside the finding's
   box within 15 px, with each finding's shipped layer (as served), then at the last stage and at each candidate
   block for contrast; the issue's target is 0.85.
5. Upload to overlay on pydicom-data's real 1955×1841 CR chest (RG1_UNCR): read → decode → render → classify →
   Grad-CAM → overlay at full size, median of --repeat after a warm-up, per stage and in total.
Run it from a folder without a `dl` subfolder: python-gdcm fails to import there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MEDUI_HOME", tempfile.mkdtemp(prefix="medui-bench-"))

POINTING_SEED = 777  # training uses 0, the fresh test set 1000, the CAM-layer selection 555
FILES = ["CT_small.dcm", "MR_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm", "JPEG-LL.dcm", "SC_rgb_jpeg.dcm",
         "OBXXXX1A.dcm", "US1_J2KR.dcm", "MR2_J2KR.dcm", "RG1_UNCR.dcm", "RG1_J2KR.dcm", "color3d_jpeg_baseline.dcm"]


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def display_rows(repeat: int) -> list[dict]:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from medui.imaging import open_image

    rows = []
    for name in FILES:
        path = get_testdata_file(name, download=False)
        if path is None:
            continue
        _, decoded, _ = open_image(path)

        def plain(path=path):
            ds = pydicom.dcmread(path)
            arr = ds.pixel_array
            if ds.PhotometricInterpretation.startswith("MONO"):
                apply_voi_lut(apply_modality_lut(arr, ds), ds)

        rows.append({"file": name, "syntax": decoded.transfer_syntax, "frames": decoded.frames,
                     "decoder": decoded.decoder, "medui_ms": round(_median_ms(lambda p=path: open_image(p), repeat), 1),
                     "pydicom_ms": round(_median_ms(plain, repeat), 1)})
    return rows


def classifier():
    """(classifier, description, trained): the registered chest-findings model, else its architecture untrained at 256 px."""
    from medui.imaging.classify import Classifier, load_classifier

    found = load_classifier()
    if found is not None:
        return found, f"{found.version.name}/{found.version.version} ({found.image_size} px)", True
    from medui.training.tasks.image import ImageTask

    model = ImageTask().fresh({"image_size": 256}, ["effusion", "nodule"]).eval()
    for param in model.parameters():
        param.requires_grad_(False)  # as load_classifier leaves the shared model
    return (Classifier(model, ["effusion", "nodule"], None),
            "tf_efficientnet_lite0, untrained (no model registered), 256 px", False)


def attribution_figures(images: int, ig_images: int, repeat: int, pointing: int) -> dict:
    import copy

    import numpy as np
    import torch
    from pydicom.data import get_testdata_file
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from medui.imaging import open_image
    from medui.imaging.attribution import IG_BATCH, IG_STEPS, attribute, overlay
    from medui.imaging.phantom import render_phantom

    clf, description, trained = classifier()
    rng = np.random.default_rng(0)
    inputs = [clf.prepare((render_phantom(rng, 512)[0] >> 4).astype(np.uint8)) for _ in range(images)]
    target = 0

    class Logits(torch.nn.Module):  # pytorch-grad-cam wants a module that returns the logits tensor
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x).logits

    twin = copy.deepcopy(clf.model)
    for param in twin.parameters():
        param.requires_grad_(True)
    ours_ms, theirs_ms, agreement = [], [], []
    with GradCAM(model=Logits(twin), target_layers=[twin.backbone.bn2]) as peer:
        for x in inputs[:2]:  # warm-up both
            attribute(clf, x, target, "gradcam")
            peer(input_tensor=x, targets=[ClassifierOutputTarget(target)])
        for x in inputs:
            start = time.perf_counter()
            ours = attribute(clf, x, target, "gradcam").map
            ours_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            theirs = peer(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
            theirs_ms.append((time.perf_counter() - start) * 1000)
            if ours.any() and theirs.any():
                agreement.append(float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]))

    attribute(clf, inputs[0], target, "ig")  # warm-up
    start = time.perf_counter()
    for x in inputs[:ig_images]:
        attribute(clf, x, target, "ig")
    ig_s = time.perf_counter() - start

    path = get_testdata_file("RG1_UNCR.dcm", download=False)
    data = Path(path).read_bytes()
    stages: dict[str, list[float]] = {k: [] for k in ("read_decode_render", "classify", "gradcam", "overlay")}
    for run in range(repeat + 1):  # the first run is the warm-up
        t0 = time.perf_counter()
        ds, _, shown = open_image(data, "RG1_UNCR.dcm")
        t1 = time.perf_counter()
        result = clf.classify(shown.image, ds)
        t2 = time.perf_counter()
        amap = attribute(clf, result.input, target, "gradcam", original_shape=shown.image.shape[:2])
        t3 = time.perf_counter()
        rgb = overlay(shown.image, amap, opacity=0.5)
        t4 = time.perf_counter()
        if run:
            for key, (a, b) in zip(stages, [(t0, t1), (t1, t2), (t2, t3), (t3, t4)]):
                stages[key].append((b - a) * 1000)
    path_ms = {k: round(statistics.median(v), 1) for k, v in stages.items()}
    return {
        "model": description, "input_px": clf.image_size, "images": images, "torch_threads": torch.get_num_threads(),
        "gradcam_ms": round(statistics.median(ours_ms), 1), "pytorch_grad_cam_ms": round(statistics.median(theirs_ms), 1),
        "gradcam_map_correlation": round(min(agreement), 4) if agreement else None,
        "ig_images_per_s": round(ig_images / ig_s, 2), "ig_steps": IG_STEPS, "ig_batch": IG_BATCH,
        "pointing_game": pointing_figures(clf, pointing) if trained and pointing else None,
        "radiograph": {"file": "RG1_UNCR.dcm", "shape": list(rgb.shape[:2]), "stages_ms": path_ms,
                       "total_ms": round(sum(path_ms.values()), 1), "target_ms": 1000},
    }


def pointing_figures(clf, n: int) -> list[dict]:
    """Grad-CAM pointing-game hit rates over the marked findings of n fresh phantoms (seed 777): with the layers the
    product uses (each finding's own, from the version's attribution.json), then at each fixed layer for contrast."""
    from medui.imaging.analysis import cam_layer
    from medui.imaging.cam_layers import CANDIDATE_LAYERS, pointing_hits
    from medui.imaging.trust import POINTING_TOLERANCE_PX

    fixed = (None, *CANDIDATE_LAYERS)
    hits = pointing_hits(clf, n, POINTING_SEED, lambda label: {cam_layer(clf, "gradcam", label), *fixed})
    rows = []
    for name in ("as served", *fixed):
        per = {label: by_layer[cam_layer(clf, "gradcam", label) if name == "as served" else name]
               for label, by_layer in hits.items()}
        every = [h for v in per.values() for h in v]
        rows.append({"layer": name or "last stage", "images": n, "tolerance_px": POINTING_TOLERANCE_PX,
                     "positives": len(every), "rate": round(sum(every) / len(every), 3) if every else None,
                     "per_finding": {k: round(sum(v) / len(v), 3) for k, v in per.items()}, "target": 0.85})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--images", type=int, default=20, help="phantom images for the Grad-CAM comparison")
    parser.add_argument("--ig-images", type=int, default=5, help="images for the Integrated Gradients throughput")
    parser.add_argument("--pointing", type=int, default=60, help="fresh phantoms for the pointing game (0: skip)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = display_rows(args.repeat)
    attr = attribution_figures(args.images, args.ig_images, args.repeat, args.pointing)
    if args.json:
        print(json.dumps({"display": rows, "attribution": attr}, indent=2))
        return 0
    head = f"{'file':34} {'transfer syntax':42} {'frames':>6} {'decoder':9} {'medui ms':>9} {'pydicom ms':>10}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['file']:34} {r['syntax'][:42]:42} {r['frames']:>6} {r['decoder']:9} {r['medui_ms']:>9} "
              f"{r['pydicom_ms']:>10}")
    rg = attr["radiograph"]
    print(f"\nAttribution: {attr['model']}, {os.cpu_count()} CPUs visible, torch threads {attr['torch_threads']}")
    print(f"Grad-CAM, median of {attr['images']} phantoms: ours {attr['gradcam_ms']} ms/img, pytorch-grad-cam "
          f"{attr['pytorch_grad_cam_ms']} ms/img (maps agree: correlation >= {attr['gradcam_map_correlation']})")
    print(f"Integrated Gradients ({attr['ig_steps']} steps, batches of {attr['ig_batch']}): "
          f"{attr['ig_images_per_s']} images/s")
    for pg in attr["pointing_game"] or []:
        print(f"Pointing game (Grad-CAM at {pg['layer']}, {pg['images']} fresh phantoms, {pg['positives']} marked "
              f"findings, tolerance {pg['tolerance_px']} px): {pg['rate']} {pg['per_finding']} (target {pg['target']})")
    if not attr["pointing_game"]:
        print("Pointing game: skipped (no trained chest-findings model registered)")
    print(f"Upload to overlay, {rg['file']} {rg['shape'][0]}x{rg['shape'][1]}, median of {args.repeat} after warm-up: "
          + ", ".join(f"{k} {v} ms" for k, v in rg["stages_ms"].items())
          + f"; total {rg['total_ms']} ms (target under {rg['target_ms']} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
