"""Synthetic chest radiographs with findings at known places, written as real DICOM CR files.

No labelled medical images exist offline, so this draws reproducible phantoms instead: body outline, lung fields,
mediastinum and heart, spine and ribs, exposure variation and noise, plus findings whose boxes are known exactly — a
round `nodule` and a basal `effusion` with a meniscus, several per image possible. Pixels, UIDs and dates all come from
the seed, so the same (n, seed, size, mix) writes byte-identical files. Every file says it is synthetic.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

DEFAULT_MIX = {"normal": 0.4, "nodule": 0.25, "effusion": 0.2, "both": 0.15}  # image categories and their prevalence
KINDS = {"normal": (), "nodule": ("nodule",), "effusion": ("effusion",), "both": ("nodule", "effusion")}
MIN_SIZE, MAX_SIZE = 128, 4096
MAX_VALUE = 2**12 - 1  # BitsStored 12
FIELD_MM = 430.0  # a 43 cm cassette, the usual chest field: gives PixelSpacing for any matrix size
SYNTHETIC_NOTE = "SYNTHETIC PHANTOM - NOT A PATIENT"
LABEL_COLUMNS = ["file", "label", "x0", "y0", "x1", "y1"]


@dataclass(frozen=True)
class Finding:
    """One finding's box in pixels: x0/y0 inclusive, x1/y1 exclusive, i.e. `image[y0:y1, x0:x1]`."""

    label: str
    x0: int
    y0: int
    x1: int
    y1: int


def render_phantom(rng: np.random.Generator, size: int, kinds: tuple[str, ...] | None = None
                   ) -> tuple[np.ndarray, list[Finding]]:
    """One chest image in display terms (MONOCHROME2: bright = dense, uint16 0..4095) and its findings.

    `kinds` picks the findings ("nodule", "effusion"); None draws an image category from DEFAULT_MIX.
    """
    if kinds is None:
        kinds = KINDS[str(rng.choice(list(DEFAULT_MIX), p=list(DEFAULT_MIX.values())))]
    y = (np.arange(size, dtype=np.float32)[:, None] + 0.5) / size  # normalised coordinates, broadcast not meshed
    x = (np.arange(size, dtype=np.float32)[None, :] + 0.5) / size
    mid = np.abs(x - 0.5)  # distance from the midline
    body = (np.abs((x - 0.5) / 0.46) ** 4 + np.abs((y - 0.66) / 0.6) ** 4 < 1) | ((mid < 0.1) & (y < 0.2))  # + neck
    heart = ((x - 0.54) / 0.16) ** 2 + ((y - 0.63) / 0.13) ** 2 < 1  # lies left of midline: patient left = image right
    centres = (0.28, 0.72)  # image left is the patient's right lung on a PA film
    lungs = []
    for cx in centres:
        u = (x - cx) / 0.15
        dome = 0.70 + 0.07 * u**2  # the diaphragm domes up centrally, so the costophrenic angles sit lowest
        lungs.append((u**2 + ((y - 0.46) / 0.33) ** 2 < 1) & (y < dome) & ~heart)
    lung = lungs[0] | lungs[1]

    # effusion: fluid replaces air in the lung base, so it is drawn into the anatomy (no bright rim at the lung edge)
    findings: list[Finding] = []
    fluid_any, fill = np.zeros((size, size), bool), np.zeros((size, size), np.float32)
    if "effusion" in kinds:
        for side in [0, 1] if rng.random() < 0.25 else [int(rng.integers(2))]:  # a quarter are bilateral
            lateral = np.clip((x - centres[side]) / 0.15 * (-1, 1)[side], -1, 1)  # -1 medial .. 1 chest wall
            # meniscus: fluid climbs the lateral chest wall (lung recoil and surface tension), so its upper border is
            # concave, lowest medially and highest laterally; a flat level would need air above it (hydropneumothorax)
            surface = rng.uniform(0.58, 0.65) - rng.uniform(0.04, 0.08) * ((lateral + 1) / 2) ** 2
            fluid = lungs[side] & (y > surface)
            fill += fluid * (0.75 + 0.25 * np.clip((y - surface) / 0.08, 0, 1))  # thin at the top, whiter at the base
            rows, cols = np.nonzero(fluid)
            findings.append(Finding("effusion", int(cols.min()), int(rows.min()),
                                    int(cols.max()) + 1, int(rows.max()) + 1))
            fluid_any |= fluid

    spine = (mid < 0.035) & body
    # posterior ribs run down and out from the spine: bands of a coordinate that falls with distance from the midline
    ribs = (np.sin(2 * np.pi * (y - 0.25 * mid - 0.6 * mid**2) / 0.07) > 0.4) & body & (mid > 0.04) & (y > 0.12)
    clavicles = (np.abs(y - 0.17 + 0.15 * (mid - 0.05)) < 0.012) & (mid > 0.04) & (mid < 0.3)
    img = (0.04 + 0.50 * body - 0.36 * lung * (1 - fill) + 0.08 * heart + 0.15 * spine
           + 0.06 * ribs * (y < 0.72) + 0.08 * clavicles)
    img = ndimage.gaussian_filter(img.astype(np.float32), size * 0.005)  # soft anatomical edges
    # lung markings (vessels): smooth noise, only where there is aerated lung
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), size * 0.008)
    aerated = ndimage.gaussian_filter((lung & ~fluid_any).astype(np.float32), 2)
    img += 0.03 * texture / (texture.std() + 1e-6) * aerated

    if "nodule" in kinds:
        ring = max(6.0, 0.04 * size)  # a band of plain lung round each nodule, so it is seen against lung
        free = lung & ~ndimage.binary_dilation(fluid_any, iterations=int(ring))
        rr, cc = np.arange(size)[:, None], np.arange(size)[None, :]
        for _ in range(int(rng.integers(1, 4))):
            r = max(3.0, size * rng.uniform(0.015, 0.035))  # at least 3 px, to be visible
            rows, cols = np.nonzero(ndimage.distance_transform_edt(free) >= r + ring)
            if rows.size == 0:
                break
            pick = int(rng.integers(rows.size))
            row, col = int(rows[pick]), int(cols[pick])
            d = np.hypot(rr - row, cc - col)
            # a sphere's projected thickness is its chord length, so opacity falls off as sqrt(1 - (d/r)^2)
            img += rng.uniform(0.18, 0.3) * np.sqrt(np.clip(1 - (d / r) ** 2, 0, 1)).astype(np.float32)
            half = int(np.ceil(r))
            findings.append(Finding("nodule", max(col - half, 0), max(row - half, 0),
                                    min(col + half + 1, size), min(row + half + 1, size)))
            free &= d > r + 2 * ring

    # exposure: overall gain and offset, a detector gamma, the anode heel effect along the tube axis; then noise
    img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.2) * rng.uniform(0.85, 1.1) + rng.uniform(-0.03, 0.05)
    img *= 1 + rng.uniform(-0.06, 0.06) * (y - 0.5)
    img += rng.normal(0, rng.uniform(0.008, 0.02), img.shape).astype(np.float32)
    return np.round(np.clip(img, 0, 1) * MAX_VALUE).astype(np.uint16), findings


def phantom_dataset(seed: int, index: int, size: int = 512, mix: Mapping[str, float] | None = None
                    ) -> tuple[Dataset, list[Finding]]:
    """Image `index` of the series for `seed`, as a CR DICOM dataset; it depends on (seed, index, size, mix) only."""
    rng = np.random.default_rng([seed, index])  # per image, so image i does not depend on n
    mix = dict(DEFAULT_MIX if mix is None else mix)
    category = str(rng.choice(list(mix), p=np.array(list(mix.values())) / sum(mix.values())))
    display, findings = render_phantom(rng, size, KINDS[category])
    monochrome1 = index % 5 in (1, 3)  # two in five, by index, so even a handful of files mixes both polarities
    stored = MAX_VALUE - display if monochrome1 else display  # MONOCHROME1: low values are shown white
    lo, hi = np.percentile(display, [1, 99.5])
    center = (lo + hi) / 2

    def uid(what: str) -> str:
        return generate_uid(entropy_srcs=["medui-phantom", str(seed), str(index), what])  # seed-derived, repeatable

    when = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3650)))
    spacing = f"{FIELD_MM / size:.4f}"
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = uid("instance")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{int(rng.integers(8, 18)):02d}{int(rng.integers(60)):02d}00"
    ds.AccessionNumber = f"PH{seed}{index:05d}"[-16:]
    ds.Modality = "CR"
    ds.Manufacturer = "MedUI"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CHEST PA (PHANTOM)"
    ds.SeriesDescription = "PA"
    ds.PatientName = f"PHANTOM^{index:04d}"
    ds.PatientID = f"PHANTOM-{seed}-{index:04d}"[:64]
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]  # PA: image right is the patient's left, image down is feet
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.BurnedInAnnotation = "NO"
    ds.ImageComments = SYNTHETIC_NOTE
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.PixelSpacing = ds.ImagerPixelSpacing = [spacing, spacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter = f"{(MAX_VALUE - center) if monochrome1 else center:.0f}"  # windows apply to stored values
    ds.WindowWidth = f"{max(hi - lo, 1):.0f}"
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds, findings


def generate(n: int, seed: int, out: Path, size: int = 512, *, mix: Mapping[str, float] | None = None) -> Path:
    """Write `n` phantom CR files `phantom_0000.dcm`… into `out` and `out/labels.csv`; returns the labels path.

    labels.csv has one row per finding (`file,label,x0,y0,x1,y1`, boxes as in `Finding`) and one `normal` row with an
    empty box for each clean image. `mix` weighs the categories normal/nodule/effusion/both (default DEFAULT_MIX).
    """
    out = Path(out)
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive whole number, not {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, not {seed!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, not {size!r}")
    if mix is not None:
        unknown = set(mix) - set(KINDS)
        if unknown or not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError(f"mix weighs {', '.join(KINDS)} with weights >= 0, not all zero; got {dict(mix)}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a parent is a file
        raise ValueError(f"cannot create folder {out}: {exc.strerror or exc}") from None
    rows = []
    for index in range(n):
        ds, findings = phantom_dataset(seed, index, size, mix)
        name = f"phantom_{index:04d}.dcm"
        ds.save_as(out / name, enforce_file_format=True)
        rows += [[name, f.label, f.x0, f.y0, f.x1, f.y1] for f in findings] or [[name, "normal", "", "", "", ""]]
    labels = out / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(LABEL_COLUMNS)
        writer.writerows(rows)
    return labels
