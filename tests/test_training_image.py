"""The `image` task: the EfficientNet-Lite0 weight conversion, zip/CSV datasets with bad files, LoRA and head-only
jobs on the bundled phantom sample at 64 px (CPU, a few steps), and reloading a registered version."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from medui.registry import get_version, load_state_dict
from medui.training import DatasetError, JobSpec, load_for_inference, run_job, validate_dataset
from medui.training.sample_data import SAMPLES, image_phantoms
from medui.training.tasks.image import ImageTask, to_batch

FAST = {"task": "image", "max_steps": 3, "batch_size": 4, "eval_steps": 3, "logging_steps": 1}
METRIC_KEYS = {"accuracy", "f1_macro", "auroc", "brier", "per_class", "confusion_matrix", "calibration"}


@pytest.fixture
def small_images(monkeypatch):
    """64 px inputs: JobSpec has no image-size field, so the task's class default is the knob."""
    monkeypatch.setattr(ImageTask, "image_size", 64)


def _sample_members() -> dict[str, bytes]:
    with zipfile.ZipFile(SAMPLES / "image_phantoms.zip") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_zip(path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


# ---- the pretrained base --------------------------------------------------------------------------------------

def test_package_weights_map_one_to_one_onto_timm_and_register_as_safetensors():
    from medui.training.image_base import BASE_NAME, convert, ensure_base, read_source, timm_backbone

    source = read_source()
    backbone = timm_backbone()
    converted = convert(source)
    assert len(source) == len(converted) == 296
    assert list(converted) == list(backbone.state_dict())  # timm's own key order
    for (src_key, src), (key, out) in zip(source.items(), converted.items()):
        assert torch.equal(src, out), (src_key, key)

    mv = ensure_base()
    assert (mv.name, mv.task, mv.method) == (BASE_NAME, "image", "imported")
    assert [f.path for f in mv.files] == ["model.safetensors"] and mv.provenance["source_sha256"]
    stored = load_state_dict(mv)
    assert all(torch.equal(stored[k], converted[k]) for k in converted)
    backbone.load_state_dict(stored, strict=True)
    assert ensure_base().version == mv.version  # converted once

    # a photo-like synthetic input: smooth colour gradients and a bright disc
    yy, xx = np.mgrid[0:224, 0:224] / 224.0
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.05).astype(float)
    rgb = np.stack([xx, yy, 0.5 + 0.5 * disc], 0).astype(np.float32)
    mean = torch.tensor(backbone.pretrained_cfg["mean"]).view(3, 1, 1)
    std = torch.tensor(backbone.pretrained_cfg["std"]).view(3, 1, 1)
    with torch.no_grad():
        logits = backbone.eval()((torch.from_numpy(rgb) - mean)[None] / std)
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all() and logits.std() > 0.1


def test_spec_defaults_for_the_image_task():
    s = JobSpec(task="image")
    assert s.data == str(SAMPLES / "image_phantoms.zip") and s.name == "chest-findings" and s.lr == 1e-3


def test_committed_image_sample_is_the_generator_output():
    assert (SAMPLES / "image_phantoms.zip").read_bytes() == image_phantoms()
    assert (SAMPLES / "image_phantoms.zip").stat().st_size < 1.5 * 1024**2


# ---- datasets -------------------------------------------------------------------------------------------------

def test_zip_dataset_counts_classes_and_lists_bad_files(tmp_path, small_images):
    report = validate_dataset(JobSpec(task="image"))
    assert report["counts"] == {"effusion": 14, "nodule": 18, "normal": 16} and report["accepted"] == 48
    assert report["formats"] == {"dicom": 32, "raster": 16} and report["image_size"] == 64
    assert sum(report["sizes"].values()) == 48 and set(report["splits"]["test"]) == {"effusion", "nodule", "normal"}

    members = {**_sample_members(), "normal/notes.txt": b"not an image", "nodule/broken.png": b"\x89PNG garbage",
               "readme.md": b"# data", "__MACOSX/normal/._x.dcm": b"", "normal/.DS_Store": b""}
    data = _write_zip(tmp_path / "bad.zip", members)
    with pytest.raises(DatasetError, match=r"normal/notes.txt: not an image file \(.txt\).*2 more bad rows"):
        validate_dataset(JobSpec(task="image", data=data))
    report = validate_dataset(JobSpec(task="image", data=data, skip_bad_rows=True))
    assert report["accepted"] == 48 and report["rows"] == 51
    reasons = {r["file"]: r["reason"] for r in report["rejected"]}
    assert set(reasons) == {"normal/notes.txt", "nodule/broken.png", "readme.md"}
    assert "not a readable PNG image" in reasons["nodule/broken.png"]
    assert "not inside a class folder" in reasons["readme.md"]


def test_csv_dataset_relative_paths_bad_rows_and_too_few_per_class(tmp_path, small_images):
    rows = ["path,label"]
    for name, data in _sample_members().items():
        (tmp_path / "img" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "img" / name).write_bytes(data)
        rows.append(f"img/{name},{name.split('/')[0]}")
    (tmp_path / "img" / "bad.dcm").write_bytes(b"\0" * 200)
    good = rows[:]
    rows += ["img/missing.png,normal", "img/bad.dcm,normal"]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    report = validate_dataset(JobSpec(task="image", data=str(tmp_path / "data.csv"), skip_bad_rows=True))
    assert report["accepted"] == 48 and report["counts"]["nodule"] == 18
    reasons = [r["reason"] for r in report["rejected"]]
    assert reasons[0] == "img/missing.png: line 50: no such file" and reasons[1].startswith("img/bad.dcm: DICOM refused")

    few = [r for r in good if "effusion" not in r] + [r for r in good if "effusion" in r][:3]
    (tmp_path / "few.csv").write_text("\n".join(few) + "\n")
    with pytest.raises(DatasetError, match="label 'effusion' has only 3 examples"):
        validate_dataset(JobSpec(task="image", data=str(tmp_path / "few.csv")))
    (tmp_path / "cols.csv").write_text("file,class\nx.png,normal\n")
    with pytest.raises(DatasetError, match="needs a header with path and label columns"):
        validate_dataset(JobSpec(task="image", data=str(tmp_path / "cols.csv")))


# ---- training -------------------------------------------------------------------------------------------------

def _test_inputs(job_id: str) -> tuple[torch.Tensor, np.ndarray]:
    from medui.training.job import job_dir

    saved = json.loads((job_dir(job_id) / "test_predictions.json").read_text())
    examples = ImageTask().read(SAMPLES / "image_phantoms.zip", JobSpec(task="image"))
    return to_batch([examples.items[i] for i in saved["indices"]]), np.array(saved["logits"])


@pytest.mark.slow
def test_image_lora_registers_a_candidate_and_reloads_to_the_same_predictions(shipped_models, small_images):
    result = run_job(JobSpec(**FAST, method="lora"))
    assert result["status"] == "completed" and result["version"] == "1"
    assert METRIC_KEYS <= set(result["metrics"]) and len(result["metrics"]["confusion_matrix"]) == 3
    assert len(result["metrics"]["calibration"]["bins"]) == 10
    assert result["trainable_params"] < 0.1 * result["total_params"]
    mv = get_version("chest-findings", 1)
    assert mv.stage == "candidate" and mv.base_model == "efficientnet-lite0-imagenet/1"
    assert mv.labels == ["effusion", "nodule", "normal"]
    assert {f.path for f in mv.files} == {"adapter_model.safetensors", "adapter_config.json", "architecture.json"}
    adapter = load_state_dict(mv, filename="adapter_model.safetensors")
    assert any("conv_pw.lora_A" in k for k in adapter) and any("classifier" in k for k in adapter)

    pixels, logits = _test_inputs(result["job_id"])
    model, labels = load_for_inference(mv)
    assert labels == mv.labels
    with torch.no_grad():
        np.testing.assert_allclose(model(pixel_values=pixels).logits.numpy(), logits, atol=1e-5)
        merged, _ = load_for_inference(mv, merge=True)
        np.testing.assert_allclose(merged(pixel_values=pixels).logits.numpy(), logits, atol=1e-4)


@pytest.mark.slow
def test_image_head_only_trains_only_the_classifier(shipped_models, small_images):
    result = run_job(JobSpec(**FAST, method="head-only"))
    assert result["trainable_params"] == 1280 * 3 + 3
    mv = get_version("chest-findings", result["version"])
    head = load_state_dict(mv, filename="head.safetensors")
    assert set(head) == {"backbone.classifier.weight", "backbone.classifier.bias"}
    pixels, logits = _test_inputs(result["job_id"])
    model, _ = load_for_inference(mv)
    with torch.no_grad():
        np.testing.assert_allclose(model(pixel_values=pixels).logits.numpy(), logits, atol=1e-5)


# ---- multi-label findings (labels.csv: file,label,x0,y0,x1,y1) -----------------------------------------------

def _phantoms(tmp_path, n=30, seed=5):
    from medui.imaging.phantom import generate

    return generate(n, seed, tmp_path / "phantoms", 128)


def _rows(labels_csv) -> list[list[str]]:
    import csv

    with open(labels_csv, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _write_rows(path, rows) -> str:
    path.write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    return str(path)


def test_findings_csv_reads_as_multilabel_with_multi_hot_targets(tmp_path):
    from medui.training.tasks.image import targets

    labels_csv = _phantoms(tmp_path)
    rows = _rows(labels_csv)[1:]
    truth = {}
    for file, label, *_ in rows:
        truth.setdefault(file, set()).add(label)
    spec = JobSpec(task="image", data=str(labels_csv), image_size=64)
    examples = ImageTask().read(labels_csv, spec)
    assert examples.labels == ["effusion", "nodule"] and examples.info["multilabel"] is True
    assert len(examples.items) == len(truth) == 30 and examples.items[0].shape == (64, 64)
    both = [f for f, s in truth.items() if s == {"effusion", "nodule"}]
    assert both, "the generator should put several findings on some images"
    assert examples.counts == {"effusion": sum("effusion" in s for s in truth.values()),
                               "nodule": sum("nodule" in s for s in truth.values())}
    y = targets(examples.keys, examples.labels)
    files = list(truth)  # the reader keeps the order of first mention
    for i, file in enumerate(files):
        assert y[i].tolist() == [float("effusion" in truth[file]), float("nodule" in truth[file])]
    assert examples.info["no_finding"] == sum(s == {"normal"} for s in truth.values()) == int((y.sum(1) == 0).sum())

    report = validate_dataset(spec)  # splits are stratified on the findings combination
    assert report["multilabel"] and sum(report["sizes"].values()) == 30
    assert set(report["splits"]["train"]) <= {"normal", "effusion", "nodule", "effusion+nodule"}


def test_findings_zip_with_labels_csv_in_a_folder(tmp_path):
    labels_csv = _phantoms(tmp_path)
    members = {f"study/{p.name}": p.read_bytes() for p in labels_csv.parent.iterdir()}
    data = _write_zip(tmp_path / "findings.zip", {**members, "__MACOSX/study/._labels.csv": b""})
    spec = JobSpec(task="image", data=data, image_size=64)
    zipped = ImageTask().read(tmp_path / "findings.zip", spec)
    direct = ImageTask().read(labels_csv, spec)
    assert zipped.keys == direct.keys and zipped.labels == direct.labels
    assert all(np.array_equal(a, b) for a, b in zip(zipped.items, direct.items))


def test_findings_bad_rows_reject_their_whole_file(tmp_path):
    labels_csv = _phantoms(tmp_path)
    header, *rows = _rows(labels_csv)
    normal = [r[0] for r in rows if r[1] == "normal"]
    nodule = next(r for r in rows if r[1] == "nodule")
    bad = rows + [
        ["missing.dcm", "nodule", "1", "1", "5", "5"],
        [normal[0], "effusion", "", "", "", ""],  # now both normal and a finding
        [nodule[0], "nodule", "9", "9", "3", "3"],  # a box the wrong way round
        [normal[1], "", "", "", "", ""],  # no label
        [normal[2], "normal", "1", "2", "3", "4"],  # a normal row with a box
    ]
    data = _write_rows(tmp_path / "phantoms" / "bad.csv", [header, *bad])
    with pytest.raises(DatasetError, match=r"4 more bad rows"):
        validate_dataset(JobSpec(task="image", data=data, image_size=64))
    report = validate_dataset(JobSpec(task="image", data=data, image_size=64, skip_bad_rows=True))
    reasons = {r["file"]: r["reason"] for r in report["rejected"]}
    assert set(reasons) == {"missing.dcm", normal[0], nodule[0], normal[1], normal[2]}
    assert reasons["missing.dcm"] == "missing.dcm: no such file"
    assert "listed both as normal and with findings (effusion)" in reasons[normal[0]]
    assert "needs 0 <= x0 < x1 and 0 <= y0 < y1" in reasons[nodule[0]]
    assert "needs both a file and a label" in reasons[normal[1]]
    assert "a normal row has no box" in reasons[normal[2]]
    assert report["accepted"] == 30 - 4


def test_findings_need_positives_and_negatives(tmp_path):
    labels_csv = _phantoms(tmp_path)
    header, *rows = _rows(labels_csv)
    only_normal = [[r[0], "normal", "", "", "", ""] for r in rows]
    data = _write_rows(tmp_path / "phantoms" / "n.csv", [header, *only_normal])
    with pytest.raises(DatasetError, match="no image has a finding"):
        validate_dataset(JobSpec(task="image", data=data, image_size=64))
    everywhere = [[r[0], "nodule", "1", "1", "4", "4"] for r in rows]
    data = _write_rows(tmp_path / "phantoms" / "all.csv", [header, *everywhere])
    with pytest.raises(DatasetError, match="finding 'nodule' is in 30 of 30 images; at least 5 images without it"):
        validate_dataset(JobSpec(task="image", data=data, image_size=64))
    (tmp_path / "wrong.csv").write_text("file,finding\nx.dcm,nodule\n")  # neither layout's header
    with pytest.raises(DatasetError, match="needs a header with path and label columns"):
        validate_dataset(JobSpec(task="image", data=str(tmp_path / "wrong.csv")))


def test_multilabel_metrics_and_temperature_fit():
    from medui.training.tasks.image import fit_temperature, multilabel_report

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3.0, (2000, 2))
    y = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(float)  # calibrated at T = 1 by construction
    logits[:, 1] *= 4  # the second finding is badly overconfident
    report = multilabel_report(logits, y, ["a", "b"])
    assert report["multilabel"] and report["n"] == 2000 and set(report["per_class"]) == {"a", "b"}
    assert 0.85 < report["auroc_per_class"]["a"] <= 1 and report["auroc"] == pytest.approx(
        np.mean(list(report["auroc_per_class"].values())))
    assert len(report["calibration"]["bins"]) == 10 and set(report["calibration"]["per_class"]) == {"a", "b"}
    temps = fit_temperature(logits, y)
    assert temps[0] == pytest.approx(1.0, abs=0.15) and temps[1] == pytest.approx(4.0, rel=0.15)
    after = multilabel_report(logits, y, ["a", "b"], np.array(temps))
    assert after["per_class"]["b"]["ece"] < report["per_class"]["b"]["ece"] / 2
    assert after["auroc_per_class"] == pytest.approx(report["auroc_per_class"], abs=1e-4)  # ranking unchanged
    flat = ImageTask().eval_metrics(logits, y, ["a", "b"])
    assert set(flat) == {"accuracy", "f1_macro", "auroc", "brier", "auroc_a", "auroc_b"}
