"""Decoding, display, series ordering, bad input and the `dicom` CLI, on pydicom's and pydicom-data's real files."""

from __future__ import annotations

import copy
import io
import json
import os
import random
import time
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut
from pydicom.sequence import Sequence

from medui.imaging import REASONS, ImageRefused, decode, open_image, organise, read, render

# What pydicom's own test files are refused for; everything else with pixel data must render.
EXPECTED_REFUSALS = {
    "JPEG-lossy.dcm": "gpl_decoder_required",
    "JPGExtended.dcm": "gpl_decoder_required",
    "MR_truncated.dcm": "truncated",
    "JPEG2000-embedded-sequence-delimiter.dcm": "decode_failed",
    "badVR.dcm": "missing_attribute",
    "nested_priv_SQ.dcm": "missing_attribute",
    "meta_missing_tsyntax.dcm": "missing_attribute",
}


def tf(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not available offline")
    return path


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def refused(source, reason: str, **kwargs) -> str:
    with pytest.raises(ImageRefused) as info:
        open_image(source, **kwargs)
    assert info.value.reason == reason, str(info.value)
    return str(info.value)


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KR.dcm"])
def test_monochrome1_chest_radiograph_shows_lungs_dark_and_bone_bright(name):
    ds, decoded, shown = open_image(tf(name))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert shown.image.shape == (1955, 1841) and shown.image.dtype == np.uint8
    assert decoded.decoder == ("pydicom" if "UNC" in name else "pylibjpeg")
    h, w = shown.image.shape
    lungs = [shown.image[h // 3 - 100: h // 3 + 100, x - 100: x + 100].mean() for x in (w // 4, 3 * w // 4)]
    spine = shown.image[h // 2 - 100: h // 2 + 100, w // 2 - 100: w // 2 + 100].mean()
    assert max(lungs) + 40 < spine
    # MONOCHROME1: the rendering runs opposite to the stored values.
    assert np.corrcoef(shown.image[::8, ::8].ravel(), decoded.pixels[::8, ::8].ravel())[0, 1] < -0.9


def test_every_pydicom_test_file_renders_or_is_refused_for_a_known_reason():
    start, rendered, reasons = time.perf_counter(), 0, {}
    for path in sorted(p for p in get_testdata_files() if os.path.isfile(p)):
        name = os.path.basename(path)
        try:
            ds, _decoded, shown = open_image(path)
        except ImageRefused as exc:
            assert exc.reason in REASONS and str(exc)
            reasons[name] = exc.reason
            continue
        colour = ds.PhotometricInterpretation not in ("MONOCHROME1", "MONOCHROME2")
        assert shown.image.dtype == np.uint8, name
        assert shown.image.shape == (ds.Rows, ds.Columns) + ((3,) if colour else ()), name
        rendered += 1
    for name, reason in EXPECTED_REFUSALS.items():
        if name in reasons or get_testdata_file(name, download=False):
            assert reasons.get(name) == reason, name
    assert rendered >= 150
    # Refusals are only the expected ones, non-images (no pixels, DICOMDIRs) and files that are not DICOM at all.
    others = {n: r for n, r in reasons.items() if n not in EXPECTED_REFUSALS}
    assert set(others.values()) <= {"no_pixels", "dicomdir", "upload_rejected"}, others
    assert time.perf_counter() - start < 60


def test_signed_ct_is_windowed_in_hounsfield_units():
    ds, decoded, shown = open_image(tf("CT_small.dcm"), window="lung")
    assert decoded.pixels.dtype == np.int16 and ds.PixelRepresentation == 1
    assert shown.window == {"center": -600, "width": 1500, "source": "lung"}
    hu = decoded.pixels.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = np.clip(((hu - (-600 - 0.5)) / 1499 + 0.5) * 255, 0, 255)  # PS3.3 C.11.2.1.2.1, LINEAR
    assert np.abs(shown.image.astype(float) - expected).max() <= 1
    assert hu.min() < -500  # air: negative HU reach the lung window's dark end
    narrow = render(ds, decoded, (40.0, 80.0)).image
    assert (narrow == 0).mean() > 0.05 and (narrow == 255).mean() > 0.05  # brain window saturates both ends
    assert not shown.warnings


def test_a_ct_preset_on_a_radiograph_says_it_is_in_hounsfield_units():
    ds, decoded, shown = open_image(tf("RG1_UNCR.dcm"), window="lung")
    assert ds.Modality == "CR" and shown.window["source"] == "lung"
    assert shown.warnings == ["'lung' is a CT window in Hounsfield units and this image is not CT: try header or auto"]


def test_signed_values_in_fewer_bits_stored_than_allocated():
    ds = pydicom.dcmread(tf("CT_small.dcm"))
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
    stored = np.zeros((128, 128), dtype="<u2")
    stored[0, :3] = [0x0FFF, 0xF005, 0x0800]  # -1, 5 with junk in the unused high bits, and the most negative
    ds.PixelData = stored.tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    decoded = decode(read(to_bytes(ds)))
    assert decoded.pixels[0, :3].tolist() == [-1, 5, -2048]
    shown = render(ds, decoded, (0.0, 10.0)).image
    assert shown[0, :3].tolist() == [113, 255, 0]  # LINEAR C=0 W=10: -1 → ((-1 + 0.5) / 9 + 0.5) · 255


def test_auto_window_spans_the_1st_to_99th_percentile():
    _ds, decoded, shown = open_image(tf("MR_small.dcm"), window="auto")
    lo, hi = np.percentile(decoded.pixels, [1, 99])
    assert shown.window["source"] == "auto"
    assert shown.window["width"] == pytest.approx(hi - lo, abs=1)
    assert shown.image.min() == 0 and shown.image.max() == 255


def test_header_window_index_and_voi_lut_and_modality_lut():
    ds = read(tf("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
    decoded = decode(ds)
    assert render(ds, decoded, "header", index=1).window == {"center": -600, "width": 1500, "source": "header"}
    with pytest.raises(ValueError, match="window index 5"):
        render(ds, decoded, "header", index=5)
    _, _, voi = open_image(tf("vlut_04.dcm"))
    assert voi.window["source"] == "voi_lut" and voi.image.max() > 200
    _, _, mlut = open_image(tf("mlut_18.dcm"))
    assert mlut.image.dtype == np.uint8 and mlut.image.std() > 10


def test_sigmoid_window_from_the_header():
    ds = read(tf("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 40, 400, "SIGMOID"
    shown = render(ds, decode(ds))
    hu = decode(ds).pixels * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = 255 / (1 + np.exp(-4 * (hu - 40) / 400))
    assert np.abs(shown.image - expected).max() <= 1


def test_palette_colour_becomes_rgb():
    ds, decoded, shown = open_image(tf("OBXXXX1A.dcm"))
    assert shown.image.shape == (600, 800, 3) and shown.window["source"] == "colour"
    lut = apply_color_lut(decoded.pixels, ds)  # 16-bit LUT entries, scaled onto 8 bits
    assert lut.dtype == np.uint16 and np.array_equal(shown.image, np.rint(lut / 257).astype(np.uint8))
    _, _, sixteen = open_image(tf("gdcm-US-ALOKA-16.dcm"))
    assert sixteen.image.dtype == np.uint8 and sixteen.image.shape == (480, 640, 3)


@pytest.mark.parametrize("name, tolerance", [("SC_ybr_full_uncompressed.dcm", 2), ("SC_ybr_full_422_uncompressed.dcm", 10),
                                             ("SC_rgb_dcmtk_+eb+cy+np.dcm", 12), ("SC_rgb_rle.dcm", 0)])
def test_ybr_and_encoded_colour_match_the_rgb_original(name, tolerance):
    _, _, reference = open_image(tf("SC_rgb.dcm"))
    _, _, shown = open_image(tf(name))
    assert np.abs(shown.image.astype(int) - reference.image.astype(int)).mean() <= tolerance


def test_planar_configuration_and_16_bit_rgb():
    _, _, planar = open_image(tf("color-pl.dcm"))
    _, _, pixel = open_image(tf("color-px.dcm"))
    assert np.array_equal(planar.image, pixel.image)
    _, _, sixteen = open_image(tf("SC_rgb_16bit.dcm"))
    _, _, eight = open_image(tf("SC_rgb.dcm"))
    assert np.abs(sixteen.image.astype(int) - eight.image.astype(int)).max() <= 1


def test_multi_frame_frames_are_selectable():
    ds = read(tf("emri_small.dcm"))
    every = decode(ds, frame=None)
    assert every.pixels.shape == (10, 64, 64) and every.frames == 10
    assert np.array_equal(decode(ds, frame=3).pixels, every.pixels[3])
    assert np.array_equal(render(ds, every, "auto", frame=3).image, render(ds, decode(ds, 3), "auto", frame=3).image)
    refused(tf("emri_small.dcm"), "bad_frame", frame=10)


def test_enhanced_multi_frame_uses_per_frame_window_and_rescale():
    ds = read(tf("eCT_Supplemental.dcm"))
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert open_image(tf("eCT_Supplemental.dcm"))[2].window["source"] == "header"  # from the shared group
    for k, (center, width, intercept) in enumerate([(40, 400, -1024), (-600, 1500, -1000)]):
        voi, rescale = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = 1, intercept, "HU"
        ds.PerFrameFunctionalGroupsSequence[k].FrameVOILUTSequence = Sequence([voi])
        ds.PerFrameFunctionalGroupsSequence[k].PixelValueTransformationSequence = Sequence([rescale])
    assert "FrameVOILUTSequence" in shared  # per-frame groups override the shared one
    frames = [render(ds, decode(ds, k), frame=k) for k in (0, 1)]
    assert [f.window["center"] for f in frames] == [40, -600]
    assert [f.window["width"] for f in frames] == [400, 1500]
    stored = decode(ds, 1).pixels.astype(float)
    expected = np.clip(((stored - 1000 + 600.5) / 1499 + 0.5) * 255, 0, 255)
    assert np.abs(frames[1].image - expected).max() <= 1


def _slices(tmp_path: Path, count: int = 6) -> list[Path]:
    base = pydicom.dcmread(tf("CT_small.dcm"))
    numbers = list(range(1, count + 1))
    random.Random(7).shuffle(numbers)
    paths = []
    for k in range(count):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{k + 1}"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-100, -100, -50 + 5 * k]
        ds.InstanceNumber = numbers[k]  # shuffled: must not decide the order when positions exist
        path = tmp_path / f"slice_{numbers[k]:02d}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def test_series_are_ordered_by_position_on_the_slice_normal(tmp_path):
    paths = _slices(tmp_path)
    shuffled = paths[:]
    random.Random(3).shuffle(shuffled)
    studies = organise((str(p), read(p)) for p in shuffled)
    assert len(studies) == 1 and len(studies[0].series) == 1
    series = studies[0].series[0]
    assert series.ordered_by == "image position"
    assert [i.source for i in series.instances] == [str(p) for p in paths]
    assert [i.position for i in series.instances] == [-50 + 5 * k for k in range(6)]
    # Oblique orientation: distance along the normal, not z.
    tilted = read(paths[0])
    tilted.ImageOrientationPatient = [1, 0, 0, 0, 0.6, -0.8]
    tilted.ImagePositionPatient = [0, 3, 4]
    from medui.imaging import slice_position

    assert slice_position(tilted) == pytest.approx(0 * 0 + 3 * 0.8 + 4 * 0.6)


def test_series_fall_back_to_instance_number_and_list_frames(tmp_path):
    items = []
    for path in _slices(tmp_path):
        ds = read(path)
        del ds.ImagePositionPatient
        items.append((str(path), ds))
    items.append(("enhanced", read(tf("emri_small.dcm"))))
    studies = organise(items)
    ct = next(s for study in studies for s in study.series if s.modality == "CT")
    assert ct.ordered_by == "instance number"
    assert [i.instance_number for i in ct.instances] == [1, 2, 3, 4, 5, 6]
    mr = next(s for study in studies for s in study.series if s.modality == "MR")
    assert len(mr.slices()) == 10


def test_bad_inputs_each_get_a_specific_message(tmp_path):
    assert "not a DICOM file" in refused(b"hello, this is text\n" * 20, "upload_rejected")
    assert "not a DICOM file" in refused(b"\x89PNG\r\n\x1a\n" + b"\0" * 300, "upload_rejected")
    ct = Path(tf("CT_small.dcm")).read_bytes()
    polyglot = b"MZ" + b"\0" * 126 + ct[128:]
    assert "executable" in refused(polyglot, "upload_rejected")
    assert "truncated" in refused(tf("MR_truncated.dcm"), "truncated")

    ds = pydicom.dcmread(tf("CT_small.dcm"))
    cut = copy.deepcopy(ds)
    cut.PixelData = ds.PixelData[:1000]
    assert "1,000 of the 32,768 bytes" in refused(to_bytes(cut), "truncated")
    frames = copy.deepcopy(ds)
    frames.NumberOfFrames = 4
    assert "holds 1 frames" in refused(to_bytes(frames), "dimension_mismatch")
    half = copy.deepcopy(ds)
    half.Rows = 64
    assert "do not match" in refused(to_bytes(half), "dimension_mismatch")

    huge = copy.deepcopy(ds)
    huge.Rows = huge.Columns = 65535
    huge.NumberOfFrames = 1000
    start = time.perf_counter()
    assert "GB of pixels" in refused(to_bytes(huge), "too_large")
    assert time.perf_counter() - start < 2  # refused from the header, nothing allocated

    unknown = copy.deepcopy(ds)
    unknown.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.110"  # JPEG XL Lossless: no decoder here
    with pytest.raises(ImageRefused) as info:
        decode(unknown)
    assert info.value.reason == "unsupported_syntax" and "transfer syntax" in str(info.value)
    assert "no pixel data" in refused(tf("rtplan.dcm"), "no_pixels")


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns that ".." is no valid CS value
def test_a_dicomdir_pointing_outside_its_folder_is_refused():
    ds = pydicom.dcmread(tf("DICOMDIR"))
    assert refused(to_bytes(ds), "dicomdir")
    record = next(r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r)
    record.ReferencedFileID = ["..", "..", "etc", "passwd"]
    assert "../../etc/passwd" in refused(to_bytes(ds), "dicomdir_path")


def test_cli_json_covers_files_zips_and_errors(cli, tmp_path, shipped_models):  # no model: its output is pinned
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tf("MR_small.dcm"), "series/MR_small.dcm")
        zf.writestr("series/notes.txt", "not an image")
    code, out, _ = cli("dicom", tf("CT_small.dcm"), str(archive), tf("JPEG-lossy.dcm"), "--json")
    assert code == 1
    results = json.loads(out)
    assert [r["source"].rsplit("/", 1)[-1] for r in results] == ["CT_small.dcm", "MR_small.dcm", "notes.txt",
                                                                 "JPEG-lossy.dcm"]
    ct = results[0]
    assert {k: ct[k] for k in ("modality", "photometric", "transfer_syntax", "decoder", "rows", "columns", "frames")} \
        == {"modality": "CT", "photometric": "MONOCHROME2", "transfer_syntax": "Explicit VR Little Endian",
            "decoder": "pydicom", "rows": 128, "columns": 128, "frames": 1}
    assert ct["findings"] == [] and ct["cam"] is None and ct["model"] is None
    assert "no imaging model is registered yet" in ct["warnings"]
    assert ct["sop_instance_uid"] and ct["window"]["source"] in ("header", "auto")
    assert results[1]["source"].endswith("study.zip:series/MR_small.dcm")
    assert set(results[2]) == {"source", "error"} and "not a DICOM file" in results[2]["error"]
    assert "GPL" in results[3]["error"]


def test_cli_png_window_and_frame(cli, tmp_path):
    out = tmp_path / "rg1.png"
    code, text, _ = cli("dicom", tf("RG1_UNCR.dcm"), "--png", str(out))
    assert code == 0 and "header" in text
    with Image.open(out) as image:
        assert image.size == (1841, 1955) and image.mode == "L"
    code, out_json, _ = cli("dicom", tf("CT_small.dcm"), "--window=-600,1500", "--json")
    assert json.loads(out_json)[0]["window"] == {"center": -600, "width": 1500, "source": "explicit"}
    code, _, err = cli("dicom", tf("CT_small.dcm"), "--window", "bogus")
    assert code == 1 and "window must be one of" in err
    folder = tmp_path / "pngs"
    code, _, _ = cli("dicom", tf("emri_small.dcm"), tf("SC_rgb.dcm"), "--frame", "0", "--png", str(folder))
    assert code == 0 and len(list(folder.glob("*.png"))) == 2
    code, out_json, _ = cli("dicom", tf("emri_small.dcm"), "--frame", "12", "--json")
    assert code == 1 and "Frame 12 does not exist" in json.loads(out_json)[0]["error"]
