"""`medui dicom` with findings and attribution (fake classifier at the model boundary, then the shipped model), and
the decode bounds on crafted files."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pydicom
import pytest
from imaging_fake import fake_classifier
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames

from medui.imaging.analysis import NO_MODEL
from medui.imaging.decode import ImageRefused, bounded
from medui.imaging.phantom import generate

KEYS = {"source", "sop_instance_uid", "modality", "photometric", "transfer_syntax", "decoder", "rows", "columns",
        "frames", "window", "findings", "cam", "model", "warnings"}


def tf(name: str) -> str:
    return get_testdata_file(name, download=False)


@pytest.fixture
def phantoms(tmp_path):
    """Four 128-px phantom CR files (two with findings, MONOCHROME1 and 2 mixed) in a folder."""
    generate(4, 11, tmp_path / "ph", 128)
    return tmp_path / "ph"


@pytest.fixture
def fake(monkeypatch):
    classifier = fake_classifier()
    monkeypatch.setattr("medui.imaging.classify.load_classifier", lambda *a, **k: classifier)
    return classifier


def run_json(cli, *args: str) -> tuple[int, list[dict]]:
    code, out, _ = cli("dicom", *args, "--json")
    return code, json.loads(out)


def test_json_per_image_with_findings_cam_and_errors(cli, fake, phantoms, tmp_path):
    junk = tmp_path / "notes.dcm"
    junk.write_text("not an image\n")
    blank = pydicom.dcmread(phantoms / "phantom_0002.dcm")
    blank.PixelData = bytes(len(blank.PixelData))  # all zeros: nothing to classify
    blank.save_as(tmp_path / "blank.dcm")
    code, results = run_json(cli, str(phantoms / "phantom_0000.dcm"), str(junk), tf("CT_small.dcm"),
                             str(tmp_path / "blank.dcm"))
    assert code == 1 and len(results) == 4
    cr, bad, ct, empty = results
    assert set(cr) == KEYS and set(bad) == {"source", "error"} and "not a DICOM file" in bad["error"]
    assert cr["model"] == {"name": "chest-findings", "version": "1"} and cr["warnings"] == []
    assert sorted(f["label"] for f in cr["findings"]) == ["effusion", "nodule"]  # never "normal"
    probabilities = [f["probability"] for f in cr["findings"]]
    assert probabilities == sorted(probabilities, reverse=True) and all(0 <= p <= 1 for p in probabilities)
    assert set(cr["cam"]) == {"label", "method", "peak"}
    assert cr["cam"]["label"] == cr["findings"][0]["label"] and cr["cam"]["method"] == "gradcam"
    row, col = cr["cam"]["peak"]
    assert 0 <= row < cr["rows"] == 128 and 0 <= col < cr["columns"] == 128
    # CT is no projection radiograph: classified under the input contract's warning, in CT's own pixels
    assert set(ct) == KEYS and ct["rows"] == 128 and ct["findings"] and ct["cam"]["peak"][0] < 128
    assert any("not a projection radiograph" in w for w in ct["warnings"])
    # a blank image cannot be scored: displayed and described, not classified, and the warning says why
    assert set(empty) == KEYS and empty["findings"] == [] and empty["cam"] is None
    assert empty["model"] == cr["model"] and any(w.startswith("not classified: the image is blank")
                                                 for w in empty["warnings"])


def test_cam_png_method_and_folder_naming(cli, fake, phantoms, tmp_path):
    single = tmp_path / "one.png"
    code, results = run_json(cli, str(phantoms / "phantom_0001.dcm"), "--cam", str(single), "--cam-method", "ig")
    assert code == 0 and results[0]["cam"]["method"] == "ig"
    with Image.open(single) as image:
        assert image.size == (128, 128) and image.mode == "RGB"
    folder = tmp_path / "cams"
    code, results = run_json(cli, str(phantoms), tf("US1_UNCR.dcm"), "--cam", str(folder), "--png", str(folder),
                             "--cam-method", "hirescam")
    names = {p.name for p in folder.iterdir()}
    # NNNN is the image's JSON position; the phantom folder's labels.csv is skipped
    assert code == 0 and [r["source"].rsplit("/", 1)[-1] for r in results] == [
        "phantom_0000.dcm", "phantom_0001.dcm", "phantom_0002.dcm", "phantom_0003.dcm", "US1_UNCR.dcm"]
    assert names == {f"{k:04d}_{stem}{kind}.png" for k, stem in enumerate(
        ["phantom_0000", "phantom_0001", "phantom_0002", "phantom_0003", "US1_UNCR"]) for kind in ("", "-cam")}
    assert all(r["cam"]["method"] == "hirescam" for r in results)
    with Image.open(folder / "0004_US1_UNCR-cam.png") as image:  # an RGB ultrasound: overlay at its size
        assert image.size == (results[4]["columns"], results[4]["rows"])


def test_text_output_names_the_top_finding(cli, fake, phantoms):
    code, text, _ = cli("dicom", str(phantoms / "phantom_0000.dcm"))
    assert code == 0 and "FINDING" in text and "peak row" in text and "not for clinical use" in text


def test_without_a_registered_model(cli, monkeypatch, phantoms, tmp_path):
    monkeypatch.setattr("medui.imaging.classify.load_classifier", lambda *a, **k: None)
    code, results = run_json(cli, str(phantoms / "phantom_0000.dcm"), "--cam", str(tmp_path / "cam.png"))
    assert code == 0 and results[0]["findings"] == [] and results[0]["cam"] is None and results[0]["model"] is None
    assert NO_MODEL in results[0]["warnings"] and not (tmp_path / "cam.png").exists()


def test_cli_methods_are_the_attribution_methods():
    from medui.cli.dicom_cmd import CAM_METHODS
    from medui.imaging.attribution import METHODS

    assert CAM_METHODS == METHODS


def test_a_bad_cam_method_is_one_line(cli, phantoms):
    with pytest.raises(SystemExit):
        cli("dicom", str(phantoms / "phantom_0000.dcm"), "--cam-method", "guided")


# --- decode bounds ------------------------------------------------------------------------------------------------


def test_gigabytes_declared_are_refused_before_decoding(cli, monkeypatch, tmp_path):
    monkeypatch.setattr("medui.imaging.classify.load_classifier", lambda *a, **k: None)
    ds = pydicom.dcmread(tf("CT_small.dcm"))
    ds.Rows = ds.Columns = 40000  # 40000² × 2 bytes = 3.0 GB, with the original 32 kB of pixel data
    path = tmp_path / "huge.dcm"
    ds.save_as(path)
    code, results = run_json(cli, str(path))
    assert code == 1 and "3.0 GB of pixels; the limit is 1 GB" in results[0]["error"]


def crafted_j2k(path) -> None:
    """A JPEG 2000 image whose own code stream (SIZ marker) claims 60000×60000 inside a 64×64 DICOM header: without
    a bound OpenJPEG allocated 7.4 GB and spent 50 s here before failing."""
    ds = pydicom.dcmread(tf("MR_small_jp2klossless.dcm"))
    stream = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    siz = stream.find(b"\xff\x51")
    struct.pack_into(">IIIIII", stream, siz + 6, 60000, 60000, 0, 0, 60000, 60000)  # Xsiz Ysiz XOsiz YOsiz XT YT
    ds.PixelData = encapsulate([bytes(stream)])
    ds.save_as(path)


def test_a_code_stream_claiming_gigabytes_fails_fast_within_the_memory_bound(cli, monkeypatch, tmp_path):
    monkeypatch.setattr("medui.imaging.classify.load_classifier", lambda *a, **k: None)
    path = tmp_path / "crafted.dcm"
    crafted_j2k(path)
    code, results = run_json(cli, str(path), tf("MR_small_jp2klossless.dcm"))
    assert code == 1 and results[0]["error"].startswith("The compressed pixel data could not be decoded")
    assert results[1]["decoder"] == "pylibjpeg" and results[1]["rows"] == 64  # the genuine one still decodes


def test_a_hung_decoder_is_stopped_with_a_message():
    with pytest.raises(ImageRefused) as info:
        bounded(time.sleep, (600,), timeout=1)  # were the worker waited for, pytest's 300 s timeout would fail this
    assert info.value.reason == "decode_timeout" and "took longer than 1 s and was stopped" in str(info.value)


def test_a_crashing_decoder_is_a_message_not_a_crash():
    import signal

    with pytest.raises(ImageRefused) as info:
        bounded(signal.raise_signal, (signal.SIGKILL,), timeout=30)  # dies as a segfaulting C decoder would
    assert info.value.reason == "decode_failed" and "crashed" in str(info.value)


def test_the_pages_phantom_sample_zip(cli, fake, tmp_path):
    from medui.imaging.samples import phantom_zip

    path = tmp_path / "phantom-cr-study.zip"
    path.write_bytes(phantom_zip())
    code, results = run_json(cli, str(path), "--cam", str(tmp_path / "cams"))
    assert code == 0 and [r["source"].rsplit("/", 1)[-1] for r in results] == [f"phantom_{k:04d}.dcm" for k in range(6)]
    assert len(list((tmp_path / "cams").glob("*-cam.png"))) == 6  # labels.csv is the study's boxes, not an image


def test_the_decode_worker_does_not_rerun_the_main_script(tmp_path):
    """Under Streamlit __main__ is the page script, unguarded: a worker that re-imported it would run the page."""
    import subprocess
    import sys

    script = tmp_path / "page.py"
    script.write_text("from medui.imaging import decode, read\n"
                      f"print(decode(read({tf('MR_small_jp2klossless.dcm')!r})).decoder)\n")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert (done.returncode, done.stdout) == (0, "pylibjpeg\n"), done.stderr[-500:]


@pytest.mark.slow
@pytest.mark.skipif(not (Path(__file__).resolve().parent.parent / "models" / "chest-findings" / "1").is_dir(),
                    reason="models/chest-findings/1 is not shipped yet")
def test_shipped_model_on_the_phantom_sample(cli, tmp_path):
    from medui.imaging.analysis import labels_in_zip
    from medui.imaging.samples import phantom_zip

    path = tmp_path / "phantom-cr-study.zip"
    path.write_bytes(phantom_zip())
    code, results = run_json(cli, str(path), "--cam-method", "ig")
    boxes = labels_in_zip(phantom_zip())
    assert code == 0 and all(r["model"] == {"name": "chest-findings", "version": "1"} for r in results)
    for entry in results:
        truth = {b.label for b in boxes[entry["source"].rsplit("/", 1)[-1]]}
        called = {f["label"] for f in entry["findings"] if f["probability"] >= 0.5}
        assert called == truth, entry["source"]  # the sample's six images: nodules, effusions, both, normals
    nodules = results[0]  # phantom_0000: three nodules; the IG peak lies on one of them
    row, col = nodules["cam"]["peak"]
    assert nodules["cam"]["label"] == "nodule" and any(
        b.x0 - 15 <= col < b.x1 + 15 and b.y0 - 15 <= row < b.y1 + 15 for b in boxes["phantom_0000.dcm"])


def test_efficientnet_lite0_cams_read_the_stride_16_block(phantoms):
    """The shipped backbone's last stage is too coarse to point at a nodule, so without a per-finding choice its
    CAMs read blocks.4; IG and Occlusion have no layer, and other backbones keep their last stage."""
    import numpy as np

    from medui.imaging.analysis import cam_layer, classify_image, explain

    classifier = fake_classifier()
    assert cam_layer(classifier, "gradcam") is None  # test_efficientnet is not tf_efficientnet_lite0
    classifier.model.hparams["backbone"] = "tf_efficientnet_lite0"
    assert cam_layer(classifier, "gradcam") == cam_layer(classifier, "hirescam") == "blocks.4"
    assert cam_layer(classifier, "ig") is None and cam_layer(classifier, "occlusion") is None
    display = np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8)
    found = classify_image(classifier, display, None)
    assert "blocks.4" in explain(classifier, found, "nodule", "gradcam", display.shape).layer
