"""Medical imaging without streamlit: read and decode DICOM, render it for display, order series, de-identify.

    ds = read(path_or_bytes)                 # upload guard + parse; ImageRefused(reason, message) on bad input
    decoded = decode(ds, frame=0)            # decoded.decoder says which plugin worked
    shown = render(ds, decoded, "lung")      # shown.image is uint8; shown.window says what was applied
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from medui.imaging.decode import MAX_PIXEL_BYTES, PLUGIN_ORDER, REASONS, Decoded, ImageRefused, decode, read
from medui.imaging.deid import (
    ANNEX_E_BASIC,
    Deidentifier,
    burned_in_warning,
    metadata_table,
    reveal_metadata,
)
from medui.imaging.display import PRESETS, WINDOW_CHOICES, Rendering, Window, parse_window, render
from medui.imaging.series import Instance, Series, Study, organise, slice_position

__all__ = [
    "ANNEX_E_BASIC", "MAX_PIXEL_BYTES", "PLUGIN_ORDER", "PRESETS", "REASONS", "WINDOW_CHOICES", "Decoded",
    "Deidentifier", "ImageRefused", "Instance", "Rendering", "Series", "Study", "Window", "burned_in_warning",
    "decode", "metadata_table", "open_image", "organise", "parse_window", "read", "render", "reveal_metadata",
    "slice_position",
]


def open_image(source: bytes | str | Path, name: str | None = None, frame: int = 0, window: Window = "header",
               index: int = 0) -> tuple[Dataset, Decoded, Rendering]:
    """read → decode one frame → render, the common path of the page and the CLI."""
    ds = read(source, name)
    decoded = decode(ds, frame)
    return ds, decoded, render(ds, decoded, window, index, frame)
