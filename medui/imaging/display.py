"""The display pipeline: Modality LUT → VOI (LUT or window) → MONOCHROME1 inversion → 8 bits; colour → 8-bit RGB.

Every LUT step is pydicom's own (apply_modality_lut, apply_voi, apply_windowing, apply_color_lut,
convert_color_space); this module only decides which attributes feed them (per-frame functional groups of enhanced
multi-frame files, the chosen preset) and maps their output range onto 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, apply_windowing, convert_color_space

from medui.imaging.decode import Decoded, ImageRefused

# (centre, width) in modality units (HU for CT).
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600, 1500), "mediastinum": (50, 350), "bone": (400, 1800), "brain": (40, 80), "abdomen": (40, 400),
}
WINDOW_CHOICES = (*PRESETS, "header", "auto")
AUTO_PERCENTILES = (1.0, 99.0)
# Attributes a frame's display depends on; enhanced files move them into functional groups, see frame_view.
_VIEW_KEYWORDS = ("PhotometricInterpretation", "BitsStored", "BitsAllocated", "PixelRepresentation", "Modality",
                  "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence", "VOILUTSequence",
                  "WindowCenter", "WindowWidth", "VOILUTFunction", "WindowCenterWidthExplanation")
_GROUP_MACROS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")

Window = tuple[float, float] | str


@dataclass
class Rendering:
    image: np.ndarray  # uint8, rows×cols (grey) or rows×cols×3 (RGB)
    window: dict[str, Any]  # {"center", "width", "source"}; centre/width None for colour or a VOI LUT
    warnings: list[str] = field(default_factory=list)


def parse_window(text: str) -> Window:
    """'lung', 'header', 'auto' or 'C,W' (e.g. '-600,1500')."""
    text = text.strip().lower()
    if text in WINDOW_CHOICES:
        return text
    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"window must be one of {', '.join(WINDOW_CHOICES)} or CENTER,WIDTH, got '{text[:30]}'") \
            from None
    if width <= 0:
        raise ValueError("window width must be positive")
    return center, width


def frame_view(ds: Dataset, frame: int) -> Dataset:
    """The attributes that govern one frame: top level, overridden by shared then per-frame functional groups."""
    view = Dataset()
    for keyword in _VIEW_KEYWORDS:
        if keyword in ds:
            setattr(view, keyword, ds[keyword].value)
    groups = [g[0] for g in (ds.get("SharedFunctionalGroupsSequence"),) if g]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame):
        groups.append(per_frame[frame])
    for group in groups:
        for macro in _GROUP_MACROS:
            if group.get(macro):
                for element in group[macro][0]:
                    view[element.tag] = element
    return view


def modality_values(pixels: np.ndarray, view: Dataset) -> np.ndarray:
    """Stored values → modality values (HU, ...), via the Modality LUT Sequence or Rescale Slope/Intercept."""
    return np.asarray(apply_modality_lut(pixels, view), dtype=np.float64)


def auto_window(values: np.ndarray) -> tuple[float, float]:
    sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]  # percentiles of ~512²
    lo, hi = np.percentile(sample, AUTO_PERCENTILES)
    return float((lo + hi) / 2), float(max(hi - lo, 1.0))


def _windowed(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    # apply_windowing scales to the range that BitsStored/PixelRepresentation declare: ask for unsigned 8 bits and
    # its output is the display range itself.
    target = Dataset()
    target.PhotometricInterpretation, target.BitsStored, target.PixelRepresentation = "MONOCHROME2", 8, 0
    target.WindowCenter, target.WindowWidth = center, max(width, 1.0) if function == "LINEAR" else width
    target.VOILUTFunction = function
    return apply_windowing(values, target)


def _header_window(view: Dataset, index: int) -> tuple[float, float] | None:
    if "WindowCenter" not in view or "WindowWidth" not in view:
        return None
    centers, widths = view["WindowCenter"], view["WindowWidth"]
    count = min(centers.VM, widths.VM)
    if not 0 <= index < max(count, 1):
        raise ValueError(f"window index {index} is not in the header, which has {count} window(s)")
    center = centers.value[index] if centers.VM > 1 else centers.value
    width = widths.value[index] if widths.VM > 1 else widths.value
    return float(center), float(width)


def _grey(pixels: np.ndarray, view: Dataset, window: Window, index: int) -> Rendering:
    raw_values = apply_modality_lut(pixels, view)  # integers unless rescaled: apply_voi indexes its LUT with them
    values = np.asarray(raw_values, dtype=np.float64)
    notes: list[str] = []
    function = str(view.get("VOILUTFunction") or "LINEAR").upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        notes.append(f"unknown VOI LUT Function '{function[:20]}'; used LINEAR")
        function = "LINEAR"
    if window == "header" and view.get("VOILUTSequence"):
        if not 0 <= index < len(view.VOILUTSequence):
            raise ValueError(f"VOI LUT index {index} is not in the header, which has {len(view.VOILUTSequence)}")
        out = np.asarray(apply_voi(raw_values, view, index), dtype=np.float64)
        top = max(float(np.max(view.VOILUTSequence[index].LUTData)), 1.0)  # descriptors often overstate bit depth
        image = np.clip(out * (255.0 / top), 0, 255)
        chosen: dict[str, Any] = {"center": None, "width": None, "source": "voi_lut"}
    else:
        if isinstance(window, tuple):
            center, width, source = *window, "explicit"
        elif window in PRESETS:
            (center, width), source = PRESETS[window], window
            if str(view.get("Modality") or "") != "CT":  # a CR's or MR's values are not Hounsfield units
                notes.append(f"'{window}' is a CT window in Hounsfield units and this image is not CT: "
                             "try header or auto")
        else:
            header = _header_window(view, index) if window == "header" else None
            if header and header[1] > 0:
                (center, width), source = header, "header"
            else:
                if header:
                    notes.append("the header window has no width; used auto")
                (center, width), source = auto_window(values), "auto"
        if source != "header":
            function = "LINEAR"  # the header's VOI LUT Function belongs to the header's window only
        image = _windowed(values, center, width, function)
        chosen = {"center": round(center, 3), "width": round(width, 3), "source": source}
    if view.PhotometricInterpretation == "MONOCHROME1":
        image = 255.0 - image  # after VOI: MONOCHROME1 means low values are shown bright
    return Rendering(np.rint(image).astype(np.uint8), chosen, notes)


def _to_8bit(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8 and bits <= 8:
        return arr
    return np.rint(arr.astype(np.float64) * (255.0 / (2**bits - 1))).clip(0, 255).astype(np.uint8)


def _colour(pixels: np.ndarray, ds: Dataset, photometric: str) -> Rendering:
    colour = {"center": None, "width": None, "source": "colour"}
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        return Rendering(_to_8bit(rgb, 16 if rgb.dtype.itemsize > 1 else 8), colour)
    if photometric.startswith("YBR_FULL"):
        pixels = convert_color_space(pixels, "YBR_FULL", "RGB")
    elif photometric != "RGB":
        raise ImageRefused("unsupported_photometric", f"Photometric Interpretation '{photometric[:20]}' cannot be "
                                                      "displayed.")
    return Rendering(_to_8bit(pixels, int(ds.get("BitsStored") or 8)), colour)


def render(ds: Dataset, decoded: Decoded, window: Window = "header", index: int = 0, frame: int = 0) -> Rendering:
    """One frame as 8-bit grey or RGB. `window`: 'header' (falls back to auto), 'auto', a preset, or (C, W)."""
    if decoded.frame is not None:
        pixels, frame = decoded.pixels, decoded.frame
    else:
        pixels = decoded.pixels[frame] if decoded.frames > 1 else decoded.pixels
    photometric = decoded.photometric
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        view = frame_view(ds, frame)
        view.PhotometricInterpretation = photometric
        result = _grey(pixels, view, window, index)
    else:
        result = _colour(pixels, ds, photometric)
    result.warnings = decoded.warnings + result.warnings
    return result
