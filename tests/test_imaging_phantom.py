"""Phantom chest radiographs: real DICOM CR files, labels matching the pixels, byte-identical per seed, and the CLI."""

import csv
import json

import numpy as np
import pydicom
import pytest

from medui.imaging.phantom import SYNTHETIC_NOTE, Finding, generate, render_phantom

SIZE = 128


def read_labels(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def display(ds) -> np.ndarray:
    """Pixels as a viewer shows them: bright = dense, MONOCHROME1 inverted."""
    pixels = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return (2**ds.BitsStored - 1) - pixels if ds.PhotometricInterpretation == "MONOCHROME1" else pixels


def boxes(rows, label):
    return [(row["file"], *(int(row[k]) for k in ("x0", "y0", "x1", "y1"))) for row in rows if row["label"] == label]


def test_files_are_cr_dicom_with_the_expected_tags(tmp_path):
    labels = generate(8, seed=3, out=tmp_path, size=SIZE)
    files = sorted(tmp_path.glob("*.dcm"))
    assert labels == tmp_path / "labels.csv" and len(files) == 8
    datasets = [pydicom.dcmread(f) for f in files]
    for i, ds in enumerate(datasets):
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == pydicom.uid.ComputedRadiographyImageStorage
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert (ds.Modality, ds.BodyPartExamined, ds.ViewPosition) == ("CR", "CHEST", "PA")
        assert str(ds.PatientName) == f"PHANTOM^{i:04d}" and ds.PatientID and len(ds.StudyDate) == 8
        assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == (SIZE, SIZE, 1)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        assert float(ds.PixelSpacing[0]) > 0 and list(ds.ImagerPixelSpacing) == list(ds.PixelSpacing)
        assert float(ds.WindowWidth) > 0 and 0 <= float(ds.WindowCenter) <= 4095
        assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, 0.0)
        assert ds.BurnedInAnnotation == "NO" and ds.ImageComments == SYNTHETIC_NOTE
        pixels = ds.pixel_array
        assert pixels.shape == (SIZE, SIZE) and pixels.dtype == np.uint16 and pixels.max() <= 4095
        # after correct display every file looks alike: spine and mediastinum white, lung fields dark
        shown = display(ds)
        assert shown[SIZE // 4: SIZE // 2, SIZE // 2 - 2: SIZE // 2 + 2].mean() > shown[
            int(SIZE * 0.35): int(SIZE * 0.45), int(SIZE * 0.24): int(SIZE * 0.32)].mean() + 500
    assert {ds.PhotometricInterpretation for ds in datasets} == {"MONOCHROME1", "MONOCHROME2"}
    for uid in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        assert len({ds.get(uid) for ds in datasets}) == 8


def test_labels_match_files_and_boxes_lie_inside(tmp_path):
    rows = read_labels(generate(12, seed=5, out=tmp_path, size=SIZE))
    assert list(rows[0]) == ["file", "label", "x0", "y0", "x1", "y1"]
    assert {row["file"] for row in rows} == {f.name for f in tmp_path.glob("*.dcm")}
    assert {row["label"] for row in rows} == {"normal", "nodule", "effusion"}
    for row in rows:
        if row["label"] == "normal":
            assert [row[k] for k in ("x0", "y0", "x1", "y1")] == ["", "", "", ""]
            assert [r["label"] for r in rows if r["file"] == row["file"]] == ["normal"]  # a clean image has no findings
        else:
            x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE


def test_nodules_are_brighter_than_the_lung_around_them(tmp_path):
    rows = read_labels(generate(6, seed=11, out=tmp_path, size=256, mix={"nodule": 1}))
    nodules = boxes(rows, "nodule")
    seen = set()
    assert len(nodules) >= 6
    for name, x0, y0, x1, y1 in nodules:
        ds = pydicom.dcmread(tmp_path / name)
        seen.add(ds.PhotometricInterpretation)
        shown = display(ds)
        half, cy, cx = (x1 - x0 - 1) / 2, (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2
        rows_, cols_ = np.ogrid[:256, :256]
        d = np.hypot(rows_ - cy, cols_ - cx)
        ring = shown[(d > half + 1) & (d <= half + 6)]  # a band of lung just outside the box's circle
        assert shown[y0:y1, x0:x1].mean() > ring.mean() + 50
    assert seen == {"MONOCHROME1", "MONOCHROME2"}  # so the check holds for inverted files too


def test_effusions_fill_the_base_of_one_lung(tmp_path):
    rows = read_labels(generate(6, seed=2, out=tmp_path, size=SIZE, mix={"effusion": 1}))
    effusions = boxes(rows, "effusion")
    assert len(effusions) >= 6 and not boxes(rows, "nodule")
    for name, x0, y0, x1, y1 in effusions:
        assert y0 >= 0.45 * SIZE and y1 <= 0.8 * SIZE  # the lower part of the chest
        assert x1 <= SIZE / 2 or x0 >= SIZE / 2  # within one lung, never across the mediastinum
        shown = display(pydicom.dcmread(tmp_path / name))
        cols = slice(x0 + (x1 - x0) // 3, x1 - (x1 - x0) // 3)
        above = shown[y0 - int(0.15 * SIZE): y0 - 2, cols].mean()  # aerated lung over the fluid
        assert shown[y1 - 6: y1 - 1, cols].mean() > above + 300  # the fluid is whiter than the air-filled lung


def test_render_phantom_gives_the_findings_asked_for():
    image, findings = render_phantom(np.random.default_rng(0), 160, ("nodule", "effusion"))
    assert image.shape == (160, 160) and image.dtype == np.uint16 and image.max() <= 4095
    assert {f.label for f in findings} == {"nodule", "effusion"} and all(isinstance(f, Finding) for f in findings)
    assert render_phantom(np.random.default_rng(0), 160, ())[1] == []
    again, _ = render_phantom(np.random.default_rng(0), 160, ("nodule", "effusion"))
    assert np.array_equal(image, again)


def test_same_seed_is_byte_identical_and_another_seed_differs(tmp_path):
    first, second, other, shorter = (tmp_path / d for d in ("a", "b", "c", "d"))
    generate(4, seed=7, out=first, size=SIZE)
    generate(4, seed=7, out=second, size=SIZE)
    generate(4, seed=8, out=other, size=SIZE)
    generate(2, seed=7, out=shorter, size=SIZE)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir()) and "labels.csv" in names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes()
    for name in names:
        if name.endswith(".dcm"):
            assert (first / name).read_bytes() != (other / name).read_bytes()
            pixels = [pydicom.dcmread(folder / name).pixel_array for folder in (first, other)]
            assert not np.array_equal(*pixels)
    assert (shorter / "phantom_0001.dcm").read_bytes() == (first / "phantom_0001.dcm").read_bytes()  # image i ignores n


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": -2}, {"size": 64}, {"size": 5000}, {"seed": -1},
                                    {"mix": {"fracture": 1}}, {"mix": {"normal": 0}}])
def test_generate_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate(**{"n": 1, "seed": 0, "out": tmp_path / "out", "size": SIZE, **kwargs})
    assert not (tmp_path / "out").exists()


def test_cli_synth_writes_files_and_labels(cli, tmp_path):
    out = tmp_path / "phantoms"
    code, stdout, _ = cli("imaging", "synth", "--n", "5", "--seed", "4", "--out", str(out), "--size", str(SIZE),
                          "--json")
    data = json.loads(stdout)
    assert code == 0 and data["out"] == str(out) and data["labels_csv"] == str(out / "labels.csv")
    assert data["files"] == [f"phantom_{i:04d}.dcm" for i in range(5)]
    assert all((out / f).is_file() for f in data["files"])
    rows = read_labels(out / "labels.csv")
    assert sum(data["counts"].values()) == len(rows) and set(data["counts"]) <= {"normal", "nodule", "effusion"}
    code, stdout, _ = cli("imaging", "synth", "--n", "2", "--seed", "4", "--out", str(tmp_path / "t"), "--size",
                          str(SIZE), "--mix", "normal=1")
    assert code == 0 and "wrote 2 synthetic phantom DICOM files" in stdout and "normal: 2" in stdout


@pytest.mark.parametrize("extra", [["--n", "0"], ["--size", "100"], ["--size", "4097"], ["--out", "FILE"],
                                   ["--mix", "normal"], ["--mix", "normal=x"], ["--mix", "fracture=1"]])
def test_cli_synth_rejects_bad_arguments_in_one_line(cli, tmp_path, extra):
    existing = tmp_path / "taken.txt"
    existing.write_text("not a folder")
    argv = {"--n": "2", "--seed": "1", "--out": str(tmp_path / "out"), "--size": str(SIZE)}
    argv.update(dict(zip(extra[::2], extra[1::2])))
    argv = {k: (str(existing) if v == "FILE" else v) for k, v in argv.items()}
    code, stdout, stderr = cli("imaging", "synth", *[part for kv in argv.items() for part in kv], "--json")
    assert code == 1 and stderr.startswith("error: ") and stderr.count("\n") == 1
    assert "error" in json.loads(stdout)
    assert not (tmp_path / "out").exists() and existing.read_text() == "not a folder"
